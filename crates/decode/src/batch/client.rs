//! A level's side of the batch engine: its session travels to the engine for each pass and
//! comes back with the logits.

use std::sync::Arc;
use std::time::Instant;

use pipespec_model::{Model, Session};

use super::{Membership, Pass};
use crate::error::{DecodeError, Result};

/// What a level needs to send passes to the engine: its chain's membership.
pub(crate) struct BatchClient {
    membership: Arc<Membership>,
}

impl BatchClient {
    pub(crate) fn new(membership: Arc<Membership>) -> BatchClient {
        BatchClient { membership }
    }
}

/// A session whose passes run inside the engine's steps.
pub(crate) struct BatchedSession {
    /// None only while a pass is with the engine, or after the engine lost it.
    session: Option<Session>,
    model: Arc<Model>,
    capacity: usize,
    /// Buffers that travel with each pass and come back, reused from pass to pass.
    tokens: Vec<u32>,
    logits: Vec<f32>,
    client: BatchClient,
}

impl BatchedSession {
    pub(crate) fn new(session: Session, client: BatchClient) -> BatchedSession {
        BatchedSession {
            model: session.model().clone(),
            capacity: session.capacity(),
            session: Some(session),
            tokens: Vec::new(),
            logits: Vec::new(),
            client,
        }
    }

    /// The session, unless a failed pass lost it.
    pub(crate) fn into_session(self) -> Option<Session> {
        self.session
    }

    pub(crate) fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Feeds `tokens` at `start` in the next step and returns the logits of the last
    /// `head_rows` of them.
    pub(crate) fn forward(
        &mut self,
        tokens: &[u32],
        start: usize,
        head_rows: usize,
    ) -> Result<&[f32]> {
        let session = self.session.take().ok_or_else(|| {
            DecodeError::Batch("this level's KV cache was lost in a failed batched pass".into())
        })?;
        let mut buffer = std::mem::take(&mut self.tokens);
        buffer.clear();
        buffer.extend_from_slice(tokens);
        let pass = Pass {
            session,
            tokens: buffer,
            start,
            head_rows,
            logits: std::mem::take(&mut self.logits),
            id: 0,
            arrived: Instant::now(),
        };
        let reply = match self.client.membership.run(pass) {
            Ok(reply) => reply,
            Err(pass) => {
                self.session = Some(pass.session);
                return Err(DecodeError::Batch("the batch engine has stopped".into()));
            }
        };
        self.session = Some(reply.session);
        self.tokens = reply.tokens;
        self.logits = reply.logits;
        reply.outcome?;
        Ok(&self.logits)
    }
}
