//! The cloud's view of the device during a step: the [`ModuleHost`] whose modules live across
//! the link (each call one request and one reply on the step's stream) and the head that turns
//! the final rows into their gradient. Every reply is checked against the shapes the cloud
//! expects before it enters the graph.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::Tensor;
use pipespec_model::lora::LoraTarget;
use pipespec_tune::base::FrozenBase;
use pipespec_tune::error::{invalid, Result};
use pipespec_tune::modules::{GroupKind, ModuleHost};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::proto::{self, cloud_message, device_message, CloudMessage, DeviceMessage};
use crate::wire;

/// How long the cloud waits for one reply before giving the step up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Relay {
    pub outbound: Sender<std::result::Result<CloudMessage, Status>>,
    pub inbound: Mutex<Receiver<DeviceMessage>>,
    pub base: Arc<FrozenBase>,
    pub wire: proto::DType,
}

fn refused(status: Status) -> pipespec_tune::TuneError {
    invalid(status.message().to_string())
}

impl Relay {
    fn send(&self, kind: cloud_message::Kind) -> Result<()> {
        self.outbound
            .blocking_send(Ok(CloudMessage { kind: Some(kind) }))
            .map_err(|_| invalid("the device hung up"))
    }

    fn receive(&self) -> Result<device_message::Kind> {
        let inbound = self.inbound.lock().unwrap_or_else(|p| p.into_inner());
        match inbound.recv_timeout(REPLY_TIMEOUT) {
            Ok(DeviceMessage { kind: Some(kind) }) => Ok(kind),
            Ok(DeviceMessage { kind: None }) => Err(invalid("an empty message from the device")),
            Err(RecvTimeoutError::Timeout) => Err(invalid("the device stopped answering")),
            Err(RecvTimeoutError::Disconnected) => Err(invalid("the device hung up")),
        }
    }

    fn encode(&self, tensor: &Tensor) -> Result<proto::Tensor> {
        Ok(wire::encode(tensor, self.wire)?)
    }

    fn width(&self, layer: usize, target: LoraTarget, output: bool) -> Result<usize> {
        let matrix = self.base.matrix(Some(layer), target).ok_or_else(|| {
            invalid(format!(
                "no matrix {} in layer {layer}",
                target.short_name()
            ))
        })?;
        let (n_out, n_in) = matrix.dims2()?;
        Ok(if output { n_out } else { n_in })
    }

    /// Sends the final rows; the device's gradient at them comes back (None: evaluation).
    pub fn head(&self, last: &Tensor) -> Result<Option<Tensor>> {
        let hidden = Some(self.encode(last)?);
        self.send(cloud_message::Kind::Final(proto::Final { hidden }))?;
        match self.receive()? {
            device_message::Kind::FinalGrad(reply) => match reply.grad {
                Some(grad) => {
                    let (rows, width) = last.dims2()?;
                    let dims = [Some(rows), Some(width)];
                    Ok(Some(
                        wire::decode("final_grad.grad", Some(&grad), &dims).map_err(refused)?,
                    ))
                }
                None => Ok(None),
            },
            _ => Err(invalid(
                "the device answered the final rows with another message",
            )),
        }
    }
}

impl ModuleHost for Relay {
    fn forward(
        &self,
        layer: usize,
        kind: GroupKind,
        targets: &[LoraTarget],
        x: &Tensor,
    ) -> Result<Tensor> {
        let request = proto::ModuleRequest {
            layer: layer as u32,
            group: wire::group_index(kind),
            targets: targets.iter().map(|&t| wire::target_index(t)).collect(),
            x: Some(self.encode(x)?),
        };
        self.send(cloud_message::Kind::Module(request))?;
        let mut width = 0;
        for &target in targets {
            width += self.width(layer, target, true)?;
        }
        match self.receive()? {
            device_message::Kind::Module(reply) => {
                let dims = [Some(x.dim(0)?), Some(width)];
                wire::decode("module.deltas", reply.deltas.as_ref(), &dims).map_err(refused)
            }
            _ => Err(invalid(format!(
                "the device answered layer {layer}'s modules with another message"
            ))),
        }
    }

    fn backward(
        &self,
        layer: usize,
        kind: GroupKind,
        grad: &Tensor,
        need_dx: bool,
    ) -> Result<Option<Tensor>> {
        let request = proto::GradRequest {
            layer: layer as u32,
            group: wire::group_index(kind),
            grad: Some(self.encode(grad)?),
            need_dx,
        };
        self.send(cloud_message::Kind::Grad(request))?;
        let n_in = self.width(layer, kind.targets()[0], false)?;
        match self.receive()? {
            device_message::Kind::Grad(reply) => match (need_dx, reply.dx) {
                (true, dx) => {
                    let dims = [Some(grad.dim(0)?), Some(n_in)];
                    Ok(Some(
                        wire::decode("grad.dx", dx.as_ref(), &dims).map_err(refused)?,
                    ))
                }
                (false, _) => Ok(None),
            },
            _ => Err(invalid(format!(
                "the device answered layer {layer}'s gradient with another message"
            ))),
        }
    }
}
