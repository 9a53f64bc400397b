//! Temporary: logits error vs the exact f32 dequantization, packed vs raw candle.
use pipespec_model::kernels::CpuPath;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{LoadOptions, Model, Session};
use std::sync::Arc;
fn logits(path: &str, ids: &[u32], pack: bool) -> Vec<f32> {
    let model = Model::load_with(
        std::path::Path::new(path),
        LoadOptions {
            cpu: CpuPath::Avx2,
            pack,
        },
    )
    .unwrap();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let mut s = Session::new(model, 2048, pool);
    let mut out = Vec::new();
    for (i, chunk) in ids.chunks(64).enumerate() {
        out.extend_from_slice(s.forward(chunk, i * 64).unwrap());
    }
    out
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = Model::load(std::path::Path::new(&args[1])).unwrap();
    let tok = Tokenizer::from_gguf(model.file()).unwrap();
    let text = std::fs::read_to_string(&args[3]).unwrap();
    let ids: Vec<u32> = tok
        .encode(&text, true)
        .unwrap()
        .into_iter()
        .take(600)
        .collect();
    let reference = logits(&args[2], &ids, true);
    for pack in [true, false] {
        let l = logits(&args[1], &ids, pack);
        let (mut sq, mut kl_agree) = (0f64, 0usize);
        let v = 49152;
        for (a, b) in l.chunks(v).zip(reference.chunks(v)) {
            for (x, y) in a.iter().zip(b) {
                let d = (*x - *y) as f64;
                sq += d * d;
            }
            let am = |v: &[f32]| {
                (0..v.len())
                    .max_by(|&i, &j| v[i].partial_cmp(&v[j]).unwrap())
                    .unwrap()
            };
            if am(a) == am(b) {
                kl_agree += 1;
            }
        }
        println!(
            "{} pack={pack}: rms {:.4} argmax agrees {}/{}",
            args[1].rsplit('/').next().unwrap(),
            (sq / l.len() as f64).sqrt(),
            kl_agree,
            ids.len()
        );
    }
}
