//! Errors of the split run: the link (retried), the peer's refusal (named), or the training.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DloraError {
    /// The connection failed or dropped: the step is run again.
    #[error("link to the cloud: {0}")]
    Link(String),
    /// The peer answered with an error status naming the problem.
    #[error("the cloud refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Tune(#[from] pipespec_tune::TuneError),
}

pub type Result<T> = std::result::Result<T, DloraError>;

impl From<tonic::Status> for DloraError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted => {
                DloraError::Link(status.message().to_string())
            }
            code => DloraError::Refused(format!("{code:?}: {}", status.message())),
        }
    }
}

impl From<DloraError> for pipespec_tune::TuneError {
    fn from(error: DloraError) -> Self {
        match error {
            DloraError::Tune(inner) => inner,
            other => pipespec_tune::error::invalid(other.to_string()),
        }
    }
}
