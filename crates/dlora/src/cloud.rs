//! `pipespec tune-cloud`: the gRPC service that holds the frozen blocks. It keeps no state
//! between steps but the sessions (each the dtype its device chose): a step is one stream that
//! starts with the device's `Begin` and ends with `Done`, so a step cut off midway is simply
//! run again. A bad request gets a status naming the problem, and the service goes on serving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use pipespec_tune::base::FrozenBase;
use pipespec_tune::modules::{ActiveSet, ModuleHost};
use pipespec_tune::net::blocks::{cloud_step, StepRequest};
use pipespec_tune::ops::attention::Segment;
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::cloud_server::{Cloud, CloudServer};
use crate::proto::{self, cloud_message, device_message, CloudMessage, DeviceMessage};
use crate::relay::Relay;
use crate::wire;

/// The largest message either side accepts (a step's hidden states travel in one).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// HTTP/2 flow-control windows of both sides: a module's input or gradient (megabytes) goes in
/// one window instead of waiting for window updates every 64 KiB.
pub const WINDOW_BYTES: u32 = 32 << 20;

pub struct CloudService {
    base: Arc<FrozenBase>,
    sessions: Mutex<HashMap<u64, proto::DType>>,
    next: AtomicU64,
}

impl CloudService {
    pub fn new(base: Arc<FrozenBase>) -> CloudService {
        // Ids from the clock, so that a restarted cloud does not take an old id for its own.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        CloudService {
            base,
            sessions: Mutex::new(HashMap::new()),
            next: AtomicU64::new(start << 8),
        }
    }

    fn session(&self, id: u64) -> Result<proto::DType, Status> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&id)
            .copied()
            .ok_or_else(|| Status::not_found(format!("unknown session {id}: open one first")))
    }

    /// The step `begin` asks for, every field checked.
    fn request(&self, begin: &proto::Begin) -> Result<StepRequest, Status> {
        let c = &self.base.config;
        let hidden = wire::decode(
            "begin.hidden",
            begin.hidden.as_ref(),
            &[None, Some(c.hidden_size)],
        )?;
        let rows = hidden.dim(0).map_err(|e| Status::internal(e.to_string()))?;
        let mut segments = Vec::with_capacity(begin.segments.len());
        let mut next = 0usize;
        for s in &begin.segments {
            let (start, len) = (s.start as usize, s.len as usize);
            if start != next || len == 0 {
                return Err(Status::invalid_argument(format!(
                    "begin.segments: a segment at {start} of {len} rows does not follow row {next}"
                )));
            }
            next += len;
            segments.push(Segment { start, len });
        }
        if next != rows {
            return Err(Status::invalid_argument(format!(
                "begin.segments cover {next} rows of the {rows} hidden rows"
            )));
        }
        let first_layer = begin.first_layer as usize;
        if first_layer >= c.layer_count {
            return Err(Status::invalid_argument(format!(
                "begin.first_layer: {first_layer}, but the model has {} blocks",
                c.layer_count
            )));
        }
        if let Some(p) = begin.positions.iter().find(|&&p| p as usize >= rows) {
            return Err(Status::invalid_argument(format!(
                "begin.positions: {p} is past the {rows} rows"
            )));
        }
        let modules = |list: &[proto::Module]| -> Result<ActiveSet, Status> {
            let keys = list
                .iter()
                .map(|m| wire::module_of(m, c.layer_count))
                .collect::<Result<Vec<_>, Status>>()?;
            Ok(ActiveSet::new(keys))
        };
        Ok(StepRequest {
            hidden,
            first_layer,
            segments,
            positions: begin.positions.clone(),
            active: modules(&begin.active)?,
            train: begin.train,
            watch: modules(&begin.watch)?,
        })
    }
}

type StepStream = ReceiverStream<Result<CloudMessage, Status>>;

#[tonic::async_trait]
impl Cloud for CloudService {
    async fn open(
        &self,
        request: Request<proto::OpenRequest>,
    ) -> Result<Response<proto::OpenReply>, Status> {
        let request = request.into_inner();
        let ours = wire::model_shape(&self.base.config);
        match request.model {
            Some(theirs) if theirs == ours => {}
            theirs => {
                return Err(Status::failed_precondition(format!(
                    "the device's model {theirs:?} is not the cloud's {ours:?}: both must load the same base"
                )))
            }
        }
        let dtype = proto::DType::try_from(request.wire).map_err(|_| {
            Status::invalid_argument(format!("wire: unknown dtype {}", request.wire))
        })?;
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, dtype);
        Ok(Response::new(proto::OpenReply { session: id }))
    }

    async fn close(
        &self,
        request: Request<proto::CloseRequest>,
    ) -> Result<Response<proto::CloseReply>, Status> {
        let id = request.into_inner().session;
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match removed {
            Some(_) => Ok(Response::new(proto::CloseReply {})),
            None => Err(Status::not_found(format!("unknown session {id}"))),
        }
    }

    type StepStream = StepStream;

    async fn step(
        &self,
        request: Request<Streaming<DeviceMessage>>,
    ) -> Result<Response<StepStream>, Status> {
        let mut inbound = request.into_inner();
        let begin = match inbound.message().await? {
            Some(DeviceMessage {
                kind: Some(device_message::Kind::Begin(begin)),
            }) => begin,
            Some(_) => return Err(Status::invalid_argument("a step must start with Begin")),
            None => return Err(Status::invalid_argument("the step closed before its Begin")),
        };
        let wire = self.session(begin.session)?;
        let step = self.request(&begin)?;
        let (outbound, receiver) = tokio::sync::mpsc::channel(4);
        let (forward, replies) = std::sync::mpsc::channel();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if forward.send(message).is_err() {
                    break;
                }
            }
        });
        let relay = Arc::new(Relay {
            outbound: outbound.clone(),
            inbound: Mutex::new(replies),
            base: self.base.clone(),
            wire,
        });
        let base = self.base.clone();
        tokio::task::spawn_blocking(move || {
            let host: Arc<dyn ModuleHost> = relay.clone();
            let mut head = |last: &candle_core::Tensor| relay.head(last);
            let finished = cloud_step(&base, &step, host, &mut head).and_then(|outcome| {
                let input_grad = outcome
                    .input_grad
                    .as_ref()
                    .map(|g| wire::encode(g, wire))
                    .transpose()?;
                Ok((outcome, input_grad))
            });
            let message = match finished {
                Ok((outcome, input_grad)) => Ok(CloudMessage {
                    kind: Some(cloud_message::Kind::Done(proto::Done {
                        signals: outcome
                            .signals
                            .iter()
                            .map(|&((layer, target), value)| proto::Signal {
                                module: Some(wire::module_to(layer, target)),
                                value,
                            })
                            .collect(),
                        cloud_flops: outcome.cloud_flops,
                        input_grad,
                    })),
                }),
                Err(error) => Err(Status::invalid_argument(format!(
                    "step {}: {error}",
                    begin.step
                ))),
            };
            // The device may be gone; then nobody is left to tell.
            let _ = outbound.blocking_send(message);
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Serves `base` on `listener` until `shutdown` resolves.
pub async fn serve(
    base: Arc<FrozenBase>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = CloudServer::new(CloudService::new(base))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // A step is hundreds of request/reply exchanges: no Nagle delay on the small ones (tonic's
    // own setting does not reach a listener it is handed).
    let incoming = TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    });
    tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
