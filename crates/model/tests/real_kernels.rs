//! The matrix kernels against a dequantized f64 reference on every weight matrix of the real default model.

use std::path::PathBuf;

use pipespec_model::gguf::GgufFile;
use pipespec_model::kernels::{self, CpuPath, MatrixRef, PackedMatrix, Weight};
use rand::{Rng, SeedableRng};

fn default_model() -> PathBuf {
    let path =
        pipespec_model::home::default_model_path().expect("neither PIPESPEC_HOME nor HOME is set");
    assert!(
        path.exists(),
        "{} is missing: run `pipespec fetch` first",
        path.display()
    );
    path
}

const SCALE: f32 = 300.0;
#[test]
fn kernels_match_the_dequantized_reference_on_real_weights() {
    let file = GgufFile::open(&default_model()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for info in file.tensors.iter().filter(|t| t.dims.len() == 2) {
        let (cols, rows) = (info.dims[0], info.dims[1].min(512));
        let bytes = file.tensor_bytes(info);
        let w = MatrixRef::new(
            info.dtype,
            rows,
            cols,
            &bytes[..bytes.len() / info.dims[1] * rows],
        )
        .unwrap();
        // Activations with the outliers real hidden states have.
        let x: Vec<f32> = (0..cols)
            .map(|i| rng.random_range(-1.0..1.0f32) * if i % 97 == 0 { 40.0 } else { 1.0 } * SCALE)
            .collect();
        // Five activation rows: x and four scaled copies; check the first.
        let m = 5;
        let xs: Vec<f32> = (0..m)
            .flat_map(|k| x.iter().map(move |v| v * (1.0 + k as f32)))
            .collect();
        let packed: Vec<PackedMatrix> = CpuPath::ALL
            .into_iter()
            .filter(|p| p.available())
            .map(|p| PackedMatrix::pack(&w, p).unwrap())
            .collect();
        let weights = std::iter::once(Weight::Raw(w)).chain(packed.iter().map(Weight::Packed));
        for weight in weights {
            let mut all = vec![0.0; rows * m];
            kernels::matmul_f32(&pool, weight, &xs, m, &mut all).unwrap();
            let out = all[..rows].to_vec();
            let mut row = vec![0.0; cols];
            let mut worst = 0.0f64;
            let mut scale = 0.0f64;
            for (r, &got) in out.iter().enumerate() {
                kernels::dequantize_row(&w, r, &mut row).unwrap();
                let exact: f64 = row.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum();
                let magnitude: f64 = row
                    .iter()
                    .zip(&x)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                worst = worst.max((got as f64 - exact).abs());
                scale = scale.max(magnitude);
            }
            let path = match weight {
                Weight::Packed(p) => p.path().name(),
                Weight::Raw(_) => "raw",
            };
            assert!(
                worst <= 0.02 * scale,
                "{} ({:?}, {path}): error {worst} against a scale of {scale}",
                info.name,
                info.dtype
            );
        }
    }
}
