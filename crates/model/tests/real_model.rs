//! The real default model: the kernels against a dequantized f64 reference on every weight
//! matrix, and a llama.cpp-style Q4_K_M mix of it as accurate on the packed kernels as on
//! candle's reference dot products.

use candle_core::quantized::GgmlDType;
use pipespec_model::convert::{convert, parse_target, ConvertEvent, Target};
use pipespec_model::gguf::GgufFile;
use pipespec_model::kernels::{self, CpuPath, MatrixRef, PackedMatrix, Weight};
use pipespec_model::test_support::default_model;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{LoadOptions, Model, Session};
use rand::{Rng, SeedableRng};

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

/// Logits of every position of `tokens`, fed 64 at a time.
fn all_logits(path: &std::path::Path, options: LoadOptions, tokens: &[u32]) -> Vec<f32> {
    let model = Model::load_with(path, options).unwrap();
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let mut session = Session::new(model, tokens.len(), pool);
    let mut logits = Vec::new();
    for (i, chunk) in tokens.chunks(64).enumerate() {
        logits.extend_from_slice(session.forward(chunk, i * 64).unwrap());
    }
    logits
}

#[test]
fn a_q4_k_m_mix_is_as_accurate_packed_as_through_candle() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("q4_k_m.gguf");
    let exact = dir.path().join("f32.gguf");
    let mut quiet = |_: ConvertEvent<'_>| {};
    convert(
        &default_model(),
        &mix,
        parse_target("q4_k_m").unwrap(),
        &mut quiet,
    )
    .unwrap();
    // The mix dequantized: the same weights in f32, so its logits are the exact reference.
    convert(&mix, &exact, Target::Uniform(GgmlDType::F32), &mut quiet).unwrap();
    let file = GgufFile::open(&mix).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let text = "The river town woke slowly. Fishermen pulled their boats onto the gravel, \
                counted the night's catch and argued about the price of ice. In the bakery on \
                the square the first loaves came out at five, and the smell drifted past the \
                church, the post office and the closed bank. A teacher unlocked the school and \
                wrote the day's lesson on the board: how rivers carve valleys, why floods come \
                in spring, and what the old maps of the region got wrong. By eight the market \
                was full. Farmers sold cabbages, honey, goat cheese and wool; a man from the \
                city sold radios that nobody needed. Children ran between the stalls with \
                bread in their hands. The mayor, who had promised a new bridge three elections \
                ago, shook hands and avoided questions. At noon the bells rang and the square \
                emptied as everyone went home to eat. In the afternoon clouds gathered over \
                the hills. The fishermen looked at the sky, then at each other, and decided to \
                stay ashore. When the rain came it came hard, drumming on the tin roofs and \
                filling the gutters, and the river rose a hand's width in an hour. Nobody was \
                surprised; the river had always done as it pleased, and the town had learned \
                to build its houses on stilts, to keep its boats tied high, and to tell its \
                children stories about the year the water reached the church steps.";
    let tokens = tokenizer.encode(text, true).unwrap();
    let cpu = CpuPath::best();
    let reference = all_logits(&exact, LoadOptions { cpu, pack: true }, &tokens);
    let vocab = reference.len() / tokens.len();
    let argmax = |row: &[f32]| (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b]));
    let error = |logits: &[f32]| {
        let squares: f64 = logits
            .iter()
            .zip(&reference)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        let agree = logits
            .chunks(vocab)
            .zip(reference.chunks(vocab))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        ((squares / logits.len() as f64).sqrt(), agree)
    };
    let (packed_rms, packed_agree) =
        error(&all_logits(&mix, LoadOptions { cpu, pack: true }, &tokens));
    let (candle_rms, candle_agree) =
        error(&all_logits(&mix, LoadOptions { cpu, pack: false }, &tokens));
    eprintln!(
        "{} tokens: packed rms {packed_rms:.4}, top-1 agrees {packed_agree}; candle rms {candle_rms:.4}, agrees {candle_agree}",
        tokens.len()
    );
    // Both quantize activations to 8 bits (in different roundings): same accuracy, up to noise.
    assert!(
        packed_rms <= 1.25 * candle_rms,
        "packed {packed_rms} vs candle {candle_rms}"
    );
    assert!(packed_agree + tokens.len() / 20 >= candle_agree);
    assert!(
        packed_agree * 10 >= tokens.len() * 9,
        "{packed_agree} of {}",
        tokens.len()
    );
}
