//! The device's end of a split run: a [`BlockRunner`] that runs each step's blocks on the
//! cloud. It sends the embedded batch, answers every module request from the device's bank and
//! the final rows from its head, and counts bytes (at the transport) and round trips. A step
//! whose connection fails is run again from the start (up to `retries` times, the bank's
//! partial work discarded), so the adapter is the same as if nothing had failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use candle_core::Tensor;
use pipespec_model::config::Config;
use pipespec_tune::error::invalid;
use pipespec_tune::modules::{ModuleBank, ModuleHost};
use pipespec_tune::net::blocks::{Head, StepOutcome, StepRequest};
use pipespec_tune::step::{BlockRunner, Traffic};
use tokio::runtime::Runtime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::cloud::MAX_MESSAGE_BYTES;
use crate::error::{DloraError, Result};
use crate::proto::cloud_client::CloudClient;
use crate::proto::{self, cloud_message, device_message, CloudMessage, DeviceMessage};
use crate::transport::{counted_channel, LinkMeter};
use crate::wire;

/// How the device talks to the cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// `host:port` of `pipespec tune-cloud`.
    pub address: String,
    /// Tensors as bf16 on the wire (half the bytes; no longer bit-identical to local).
    pub bf16: bool,
    /// Tries after the first for a step whose connection fails.
    pub retries: usize,
    /// Blocks the device runs itself before the cloud's (their output crosses the link instead
    /// of the embedded batch).
    pub device_layers: usize,
    /// Test hook: break the connection once, in step `.0` (0-based), after `.1` messages from
    /// the cloud.
    pub break_at: Option<(u64, usize)>,
}

impl RemoteOptions {
    pub fn new(address: impl Into<String>) -> RemoteOptions {
        RemoteOptions {
            address: address.into(),
            bf16: false,
            retries: 5,
            device_layers: 0,
            break_at: None,
        }
    }
}

pub struct RemoteBlocks {
    runtime: Arc<Runtime>,
    client: CloudClient<Channel>,
    meter: Arc<LinkMeter>,
    options: RemoteOptions,
    shape: proto::ModelShape,
    wire: proto::DType,
    session: u64,
    step: u64,
    round_trips: u64,
    /// Connection failures survived.
    pub retried: usize,
}

fn sent<T>(result: std::result::Result<(), T>) -> Result<()> {
    result.map_err(|_| DloraError::Link("the step's stream closed".into()))
}

impl RemoteBlocks {
    /// Connects to the cloud and opens a session for a model of `config`'s shape.
    pub fn connect(options: RemoteOptions, config: &Config) -> Result<RemoteBlocks> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DloraError::Link(format!("starting the network runtime: {e}")))?;
        let meter = Arc::new(LinkMeter::default());
        let channel = {
            let _guard = runtime.enter();
            counted_channel(&options.address, meter.clone()).map_err(DloraError::Link)?
        };
        let client = CloudClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let wire = if options.bf16 {
            proto::DType::Bf16
        } else {
            proto::DType::F32
        };
        let mut blocks = RemoteBlocks {
            runtime: Arc::new(runtime),
            client,
            meter,
            options,
            shape: wire::model_shape(config),
            wire,
            session: 0,
            step: 0,
            round_trips: 0,
            retried: 0,
        };
        blocks.open()?;
        Ok(blocks)
    }

    fn open(&mut self) -> Result<()> {
        let request = proto::OpenRequest {
            model: Some(self.shape.clone()),
            wire: self.wire as i32,
        };
        let mut client = self.client.clone();
        let reply = self.runtime.block_on(client.open(request))?;
        self.session = reply.into_inner().session;
        Ok(())
    }

    /// Ends the session on the cloud.
    pub fn close(&mut self) -> Result<()> {
        let mut client = self.client.clone();
        let session = self.session;
        self.runtime
            .block_on(client.close(proto::CloseRequest { session }))?;
        Ok(())
    }

    fn begin(&self, request: &StepRequest) -> Result<DeviceMessage> {
        let modules = |set: &pipespec_tune::modules::ActiveSet| {
            set.iter().map(|(l, t)| wire::module_to(l, t)).collect()
        };
        let begin = proto::Begin {
            session: self.session,
            step: self.step,
            first_layer: request.first_layer as u32,
            train: request.train,
            hidden: Some(wire::encode(&request.hidden, self.wire).map_err(tune)?),
            segments: request
                .segments
                .iter()
                .map(|s| proto::Segment {
                    start: s.start as u32,
                    len: s.len as u32,
                })
                .collect(),
            positions: request.positions.clone(),
            active: modules(&request.active),
            watch: modules(&request.watch),
        };
        Ok(DeviceMessage {
            kind: Some(device_message::Kind::Begin(begin)),
        })
    }

    /// One try at a step.
    async fn attempt(
        &mut self,
        request: &StepRequest,
        bank: &Arc<ModuleBank>,
        head: &mut Head<'_>,
        break_after: Option<usize>,
    ) -> Result<StepOutcome> {
        let (outbound, receiver) = tokio::sync::mpsc::channel::<DeviceMessage>(4);
        sent(outbound.send(self.begin(request)?).await)?;
        let mut client = self.client.clone();
        let mut inbound = client
            .step(ReceiverStream::new(receiver))
            .await?
            .into_inner();
        let mut received = 0;
        loop {
            if break_after == Some(received) {
                self.meter.break_once.store(true, Ordering::SeqCst);
            }
            let message = match inbound.message().await? {
                Some(CloudMessage { kind: Some(kind) }) => kind,
                Some(CloudMessage { kind: None }) => return Err(refused("an empty message")),
                None => return Err(DloraError::Link("the cloud ended the step early".into())),
            };
            received += 1;
            self.round_trips += 1;
            let reply = match message {
                cloud_message::Kind::Module(m) => {
                    let kind = wire::group_of(m.group)?;
                    let targets = m
                        .targets
                        .iter()
                        .map(|&t| wire::target_of(t))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let x = wire::decode("module.x", m.x.as_ref(), &[None, None])?;
                    let deltas = bank.forward(m.layer as usize, kind, &targets, &x)?;
                    let deltas = Some(wire::encode(&deltas, self.wire).map_err(tune)?);
                    device_message::Kind::Module(proto::ModuleReply { deltas })
                }
                cloud_message::Kind::Grad(g) => {
                    let kind = wire::group_of(g.group)?;
                    let grad = wire::decode("grad.grad", g.grad.as_ref(), &[None, None])?;
                    let dx = bank.backward(g.layer as usize, kind, &grad, g.need_dx)?;
                    let dx = dx
                        .map(|dx| wire::encode(&dx, self.wire))
                        .transpose()
                        .map_err(tune)?;
                    device_message::Kind::Grad(proto::GradReply { dx })
                }
                cloud_message::Kind::Final(f) => {
                    let last = wire::decode(
                        "final.hidden",
                        f.hidden.as_ref(),
                        &[Some(request.positions.len()), None],
                    )?;
                    let grad: Option<Tensor> = head(&last)?;
                    let grad = grad
                        .map(|g| wire::encode(&g, self.wire))
                        .transpose()
                        .map_err(tune)?;
                    device_message::Kind::FinalGrad(proto::FinalGrad { grad })
                }
                cloud_message::Kind::Done(done) => {
                    let layers = self.shape.layers as usize;
                    let signals = done
                        .signals
                        .iter()
                        .map(|s| {
                            let module = s
                                .module
                                .as_ref()
                                .ok_or_else(|| refused("a signal without its module"))?;
                            Ok((wire::module_of(module, layers)?, s.value))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let input_grad = if request.train && request.first_layer > 0 {
                        let (rows, width) = request.hidden.dims2().map_err(tune)?;
                        let expected = [Some(rows), Some(width)];
                        let grad = done.input_grad.as_ref();
                        Some(wire::decode("done.input_grad", grad, &expected)?)
                    } else {
                        None
                    };
                    return Ok(StepOutcome {
                        signals,
                        cloud_flops: done.cloud_flops,
                        input_grad,
                    });
                }
            };
            sent(outbound.send(DeviceMessage { kind: Some(reply) }).await)?;
        }
    }
}

fn tune(error: candle_core::Error) -> DloraError {
    DloraError::Tune(error.into())
}

fn refused(what: &str) -> DloraError {
    DloraError::Refused(what.to_string())
}

impl BlockRunner for RemoteBlocks {
    fn run(
        &mut self,
        request: &StepRequest,
        bank: &Arc<ModuleBank>,
        head: &mut Head,
    ) -> pipespec_tune::Result<StepOutcome> {
        let mut tries = 0;
        loop {
            let break_after = match self.options.break_at {
                Some((step, after)) if step == self.step && tries == 0 => Some(after),
                _ => None,
            };
            bank.discard_from(self.options.device_layers);
            let runtime = self.runtime.clone();
            let result = runtime.block_on(self.attempt(request, bank, head, break_after));
            match result {
                Ok(outcome) => {
                    self.step += 1;
                    return Ok(outcome);
                }
                Err(DloraError::Link(why)) if tries < self.options.retries => {
                    tries += 1;
                    self.retried += 1;
                    eprintln!(
                        "pipespec tune: step {}: {why}; trying again ({tries}/{})",
                        self.step + 1,
                        self.options.retries
                    );
                    std::thread::sleep(Duration::from_millis(100 * tries as u64));
                }
                Err(DloraError::Refused(why))
                    if why.contains("unknown session") && tries < self.options.retries =>
                {
                    // The cloud restarted: a new session, and the step again.
                    tries += 1;
                    self.open().map_err(invalid_from)?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            to_cloud: self.meter.sent.load(Ordering::Relaxed),
            from_cloud: self.meter.received.load(Ordering::Relaxed),
            round_trips: self.round_trips,
        }
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn value_bytes(&self) -> u64 {
        match self.wire {
            proto::DType::Bf16 => 2,
            proto::DType::F32 => 4,
        }
    }

    fn first_layer(&self) -> usize {
        self.options.device_layers
    }
}

fn invalid_from(error: DloraError) -> pipespec_tune::TuneError {
    invalid(error.to_string())
}
