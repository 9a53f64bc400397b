//! The start gate of the levels below the target: they prefill only once the target has sent
//! its first token (or ended), so the first token costs the target's prefill alone.

use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct Gate {
    /// None while closed; Some(go on) once open.
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    /// Opens the gate (a second call changes nothing): `go_on` false tells the waiting levels
    /// the run already ended.
    pub fn open(&self, go_on: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(go_on);
            self.opened.notify_all();
        }
    }

    /// Waits until the gate opens; whether to go on.
    pub fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go_on) = *state {
                return go_on;
            }
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Opens `gate` as ended when dropped: whatever ends the target's run (an error, a panic)
/// releases the levels still waiting.
pub(crate) struct OpenOnDrop<'a>(pub &'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open(false);
    }
}
