//! Stop sequences over streamed text: text that could still begin a stop sequence is held back, and a match cuts the text where it starts.

/// Text seen so far that has not been released, and the sequences to stop at.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops,
            pending: String::new(),
        }
    }

    /// Adds `piece`; returns the text now safe to release and whether a stop sequence matched
    /// (the text then ends where the match began, and nothing more should follow).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.pending.push_str(piece);
        if let Some(cut) = self
            .stops
            .iter()
            .filter_map(|stop| self.pending.find(stop.as_str()))
            .min()
        {
            let text = self.pending[..cut].to_string();
            self.pending.clear();
            return (text, true);
        }
        let keep = self.held_back();
        let release = self.pending.len() - keep;
        let text = self.pending[..release].to_string();
        self.pending.drain(..release);
        (text, false)
    }

    /// The rest, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Bytes at the end of `pending` that are a proper prefix of some stop sequence.
    fn held_back(&self) -> usize {
        let mut keep = 0;
        for (start, _) in self.pending.char_indices() {
            let suffix = &self.pending[start..];
            if self
                .stops
                .iter()
                .any(|stop| stop.len() > suffix.len() && stop.starts_with(suffix))
            {
                keep = suffix.len();
                break;
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn holds_back_a_possible_start_and_cuts_at_a_match() {
        let mut matcher = StopMatcher::new(vec!["END".into()]);
        assert_eq!(matcher.push("abc E"), ("abc ".to_string(), false));
        assert_eq!(matcher.push("N"), (String::new(), false));
        assert_eq!(matcher.push("Dxyz"), (String::new(), true));
        let mut matcher = StopMatcher::new(vec!["END".into()]);
        assert_eq!(matcher.push("abc E"), ("abc ".to_string(), false));
        assert_eq!(matcher.push("x"), ("Ex".to_string(), false));
        assert_eq!(matcher.push("y ENDING"), ("y ".to_string(), true));
    }

    #[test]
    fn without_stops_everything_passes() {
        let mut matcher = StopMatcher::new(Vec::new());
        assert_eq!(matcher.push("héllo"), ("héllo".to_string(), false));
        assert_eq!(matcher.finish(), "");
    }
}
