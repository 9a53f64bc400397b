//! Bad requests to the cloud each get a status naming the problem, and the cloud goes on
//! serving: a model of another shape, an unknown session, a tensor of the wrong shape, an
//! unknown dtype, a first block past the model's.

mod common;

use common::{model, TestCloud};
use pipespec_dlora::proto::cloud_client::CloudClient;
use pipespec_dlora::proto::{self, device_message, DeviceMessage};
use pipespec_dlora::wire::model_shape;
use pipespec_model::synthetic::SyntheticSpec;
use tonic::Code;

fn begin(session: u64, shape: Vec<u64>, dtype: i32, bytes: usize) -> DeviceMessage {
    let rows = shape.first().copied().unwrap_or(0) as u32;
    DeviceMessage {
        kind: Some(device_message::Kind::Begin(proto::Begin {
            session,
            step: 0,
            first_layer: 0,
            train: false,
            hidden: Some(proto::Tensor {
                shape,
                dtype,
                data: vec![0; bytes],
            }),
            segments: vec![proto::Segment {
                start: 0,
                len: rows,
            }],
            positions: vec![0],
            active: vec![],
            watch: vec![],
        })),
    }
}

#[test]
fn bad_requests_are_named_and_the_cloud_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = model(&SyntheticSpec::tiny(53), dir.path());
    let cloud = TestCloud::start(&model);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = CloudClient::connect(format!("http://{}", cloud.address))
            .await
            .unwrap();
        let mut other = model_shape(&model.config);
        other.hidden += 1;
        let status = client
            .open(proto::OpenRequest {
                model: Some(other),
                wire: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("not the cloud's"),
            "{}",
            status.message()
        );
        let stepper = client.clone();
        let step = |message: DeviceMessage| {
            let mut client = stepper.clone();
            async move { client.step(tokio_stream::iter(vec![message])).await }
        };
        let hidden = model.config.hidden_size as u64;
        let status = step(begin(12345, vec![3, hidden], 0, 3 * hidden as usize * 4))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().contains("unknown session 12345"),
            "{}",
            status.message()
        );
        let session = client
            .open(proto::OpenRequest {
                model: Some(model_shape(&model.config)),
                wire: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .session;
        let status = step(begin(
            session,
            vec![3, hidden + 1],
            0,
            3 * (hidden as usize + 1) * 4,
        ))
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("begin.hidden: shape [3, 65]"),
            "{}",
            status.message()
        );
        let status = step(begin(session, vec![3, hidden], 7, 3 * hidden as usize * 4))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("unknown dtype 7"),
            "{}",
            status.message()
        );
        let status = step(begin(session, vec![3, hidden], 0, 10))
            .await
            .unwrap_err();
        assert!(
            status.message().contains("10 bytes"),
            "{}",
            status.message()
        );
        let mut past = begin(session, vec![3, hidden], 0, 3 * hidden as usize * 4);
        if let Some(device_message::Kind::Begin(b)) = past.kind.as_mut() {
            b.first_layer = model.config.layer_count as u32;
        }
        let status = step(past).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("begin.first_layer: 2"),
            "{}",
            status.message()
        );
        // Still serving: a well-formed evaluation step runs to its final rows.
        let good = begin(session, vec![3, hidden], 0, 3 * hidden as usize * 4);
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        sender.send(good).await.unwrap();
        let mut replies = client
            .step(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let first = replies.message().await.unwrap().unwrap();
        assert!(matches!(
            first.kind,
            Some(proto::cloud_message::Kind::Final(_))
        ));
        client.close(proto::CloseRequest { session }).await.unwrap();
    });
}
