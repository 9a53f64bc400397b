//! Tokenizer checks against llama.cpp's vocabulary test vectors and the default SmolLM2 model, read from `$PIPESPEC_HOME` (fetched by `scripts/fetch-test-data.sh`).

/// Named so that `cargo test tokenizer` selects these tests.
mod tokenizer {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use pipespec_model::gguf::GgufFile;
    use pipespec_model::test_support;
    use pipespec_model::tokenizer::{OwnedStreamDecoder, Tokenizer};
    use pipespec_model::ModelError;

    /// One of llama.cpp's vocabulary files, which must exist: missing test data is a failure, not a skip.
    fn vocab_file(name: &str) -> PathBuf {
        test_support::testdata_file(Path::new("llama.cpp-vocab").join(name))
    }

    fn load(path: &Path) -> Tokenizer {
        let file =
            GgufFile::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        Tokenizer::from_gguf(&file)
            .unwrap_or_else(|e| panic!("tokenizer of {}: {e}", path.display()))
    }

    /// Inputs and expected ids as llama.cpp's `test-tokenizer-0` pairs them: inputs separated by
    /// `\n__ggml_vocab_test__\n`, one output line of space-separated ids per input.
    fn read_vectors(vocab: &str) -> Vec<(String, Vec<u32>)> {
        let inputs_path = vocab_file(&format!("ggml-vocab-{vocab}.gguf.inp"));
        let outputs_path = vocab_file(&format!("ggml-vocab-{vocab}.gguf.out"));
        let raw = std::fs::read_to_string(&inputs_path).expect("reading inputs");
        let outputs = std::fs::read_to_string(&outputs_path).expect("reading outputs");

        let separator = "\n__ggml_vocab_test__\n";
        let mut inputs = Vec::new();
        let mut rest = raw.as_str();
        while !rest.is_empty() {
            match rest.find(separator) {
                Some(at) => {
                    inputs.push(rest[..at].to_string());
                    rest = &rest[at + separator.len()..];
                }
                None => {
                    inputs.push(rest.to_string());
                    break;
                }
            }
        }
        let outputs: Vec<Vec<u32>> = outputs
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(|id| id.parse().expect("an id"))
                    .collect()
            })
            .collect();
        assert_eq!(
            inputs.len(),
            outputs.len(),
            "{vocab}: inputs and outputs differ in count"
        );
        inputs.into_iter().zip(outputs).collect()
    }

    /// Every vector must match (llama.cpp runs them with add_special = false, parse_special = false),
    /// and decoding must give the input back.
    fn check_vocab(vocab: &str) {
        let tokenizer = load(&vocab_file(&format!("ggml-vocab-{vocab}.gguf")));
        let vectors = read_vectors(vocab);
        let mut failures = Vec::new();
        for (input, expected) in &vectors {
            let ids = tokenizer.encode_with(input, false, false).expect("encode");
            if &ids != expected {
                failures.push(format!(
                    "  {input:?}\n    expected {expected:?}\n    got      {ids:?}"
                ));
                continue;
            }
            // parse_special = true (the default) must agree: no vector contains a control token.
            assert_eq!(
                &tokenizer.encode(input, false).expect("encode"),
                expected,
                "{vocab}: {input:?}"
            );
            let decoded = tokenizer.decode(&ids, false).expect("decode");
            if &decoded != input {
                failures.push(format!("  {input:?}: decodes to {decoded:?}"));
            }
        }
        println!(
            "{vocab}: {}/{} vectors passed",
            vectors.len() - failures.len(),
            vectors.len()
        );
        assert!(
            failures.is_empty(),
            "{vocab}: {} of {} vectors failed:\n{}",
            failures.len(),
            vectors.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn llama_spm_vectors() {
        check_vocab("llama-spm");
    }

    #[test]
    fn llama_bpe_vectors() {
        check_vocab("llama-bpe");
    }

    #[test]
    fn qwen2_vectors() {
        check_vocab("qwen2");
    }

    #[test]
    fn gpt2_vectors() {
        check_vocab("gpt-2");
    }

    #[test]
    fn special_ids_and_flags_follow_llama_cpp() {
        let spm = load(&vocab_file("ggml-vocab-llama-spm.gguf"));
        assert_eq!(
            (spm.model_kind(), spm.bos_id(), spm.eos_id()),
            ("llama", Some(1), Some(2))
        );
        assert_eq!(spm.bos_token_text(), "<s>");
        assert_eq!(spm.eos_token_text(), "</s>");
        assert_eq!(spm.end_of_generation_ids(), &[2]);
        assert_eq!(spm.encode("", true).unwrap(), vec![1]);
        assert_eq!(
            spm.encode("Hello world", true).unwrap(),
            vec![1, 15043, 3186]
        );
        assert_eq!(spm.decode(&[1, 15043, 3186], false).unwrap(), "Hello world");
        assert_eq!(
            spm.decode(&[1, 15043, 3186], true).unwrap(),
            "<s>Hello world"
        );
        // `</s>` written in the text is one id; llama.cpp space-prefixes the text after a special token.
        assert_eq!(
            spm.encode("Hello</s>world", false).unwrap(),
            vec![15043, 2, 3186]
        );

        let llama3 = load(&vocab_file("ggml-vocab-llama-bpe.gguf"));
        assert_eq!(llama3.pre_tokenizer(), "llama-bpe");
        assert_eq!(llama3.bos_id(), Some(128000));
        // llama3 pre-tokenizer: BOS by default, as llama.cpp.
        assert_eq!(
            llama3.encode("Hello world", true).unwrap(),
            vec![128000, 9906, 1917]
        );
        // <|end_of_text|> (EOS) and <|eot_id|>; this Llama 3.0 vocabulary has no <|eom_id|>.
        assert_eq!(llama3.end_of_generation_ids(), &[128001, 128009]);
        assert_eq!(
            llama3
                .encode("<|start_header_id|>user<|end_header_id|>", false)
                .unwrap(),
            vec![128006, 882, 128007]
        );

        let qwen2 = load(&vocab_file("ggml-vocab-qwen2.gguf"));
        // <|endoftext|> (EOS), <|im_end|>, and an ordinary `</s>` token that llama.cpp's text list catches too.
        assert_eq!(qwen2.token_text(128247), Some("</s>"));
        assert_eq!(qwen2.end_of_generation_ids(), &[128247, 151643, 151645]);
        assert!(
            !qwen2.encode("hi", true).unwrap().contains(&151643),
            "qwen2 adds no BOS by default"
        );
    }

    fn smollm() -> Tokenizer {
        load(&test_support::default_model())
    }

    const ROUND_TRIP_TEXTS: &[&str] = &[
        "",
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "日本語のテキストと中文文本，还有한국어.",
        "emoji: 🦙🚀👩‍👩‍👧 and flags 🇫🇷",
        "fn main() {\n\tlet x = 1234567;\n    println!(\"{x}\");\n}\n",
        "digits 1234567 and 3.14159 and -42",
        "  leading, trailing   \n\n\n\t\t spaces   ",
        "\n",
        " ",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "mixed <|im_start|> in the middle<|im_end|>",
        "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
        "Ünïcödé accents, ß, ﬁ ligature, Ω, and zero\u{200b}width",
        "\u{0}\u{1}\u{7f} control bytes",
    ];

    #[test]
    fn smollm_round_trips() {
        let tokenizer = smollm();
        assert_eq!(tokenizer.model_kind(), "gpt2");
        assert_eq!(tokenizer.pre_tokenizer(), "smollm");
        for text in ROUND_TRIP_TEXTS {
            let ids = tokenizer.encode(text, true).unwrap();
            assert_eq!(&tokenizer.decode(&ids, true).unwrap(), text, "ids {ids:?}");

            // Streaming one id at a time gives the same text, with nothing left over.
            let mut stream = tokenizer.stream_decoder().render_special(true);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(&stream.push(id).unwrap());
            }
            assert_eq!(stream.finish(), "");
            assert_eq!(&streamed, text);
        }
    }

    #[test]
    fn smollm_special_tokens_are_single_ids() {
        let tokenizer = smollm();
        assert_eq!(tokenizer.token_text(1), Some("<|im_start|>"));
        assert_eq!(tokenizer.token_text(2), Some("<|im_end|>"));
        assert_eq!((tokenizer.bos_id(), tokenizer.eos_id()), (Some(1), Some(2)));
        assert_eq!(tokenizer.bos_token_text(), "<|im_start|>");
        assert_eq!(tokenizer.eos_token_text(), "<|im_end|>");
        // add_bos_token is false in the file.
        assert!(!tokenizer.adds_bos());

        let ids = tokenizer
            .encode("<|im_start|>user\nhi<|im_end|>", true)
            .unwrap();
        assert_eq!(ids, PINNED_CHAT);
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), "user\nhi");
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            "<|im_start|>user\nhi<|im_end|>"
        );
        // Without special parsing the markers are plain text: many ids.
        assert!(
            tokenizer
                .encode_with("<|im_start|>", false, false)
                .unwrap()
                .len()
                > 1
        );

        // <|endoftext|> (0), <|im_end|> (2), and <reponame> (4), which llama.cpp takes for the FIM repo token.
        assert_eq!(tokenizer.end_of_generation_ids(), &[0, 2, 4]);
        assert!(tokenizer.is_end_of_generation(2));
        assert!(!tokenizer.is_end_of_generation(1));
    }

    /// Checked independently with the Python `tokenizers` package: a BPE built from the same GGUF
    /// vocabulary and merges with SmolLM2's own pre-tokenizer (Digits(individual) + ByteLevel).
    const PINNED_CHAT: &[u32] = &[1, 4093, 198, 6004, 2];
    const PINNED: &[(&str, &[u32])] = &[
        ("Hello, world!", &[19556, 28, 905, 17]),
        ("digits 1234567", &[37307, 216, 33, 34, 35, 36, 37, 38, 39]),
        ("\tindented  code\n\n", &[197, 526, 6574, 216, 2909, 1116]),
        (
            "日本語 🦙",
            &[23274, 115, 40993, 179, 120, 248, 15107, 116, 243],
        ),
        ("a🦙b", &[81, 10813, 116, 243, 82]),
    ];

    #[test]
    fn smollm_pinned_ids() {
        let tokenizer = smollm();
        for (text, expected) in PINNED {
            assert_eq!(&tokenizer.encode(text, true).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn owned_stream_decoder_holds_back_split_characters() {
        let tokenizer = std::sync::Arc::new(smollm());
        // "🦙" is several byte-level tokens; each push must return only whole characters.
        let ids = tokenizer.encode("a🦙b", false).unwrap();
        assert!(ids.len() > 3, "{ids:?}");
        let mut stream = OwnedStreamDecoder::new(tokenizer.clone());
        let pieces: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
        assert_eq!(pieces.concat(), "a🦙b");
        assert!(
            pieces.iter().all(|piece| !piece.contains('\u{FFFD}')),
            "{pieces:?}"
        );
        assert!(
            pieces.iter().any(String::is_empty),
            "some push must have held bytes back: {pieces:?}"
        );
    }

    #[test]
    fn encoding_a_long_prompt_takes_milliseconds() {
        let paragraph =
            "In 2023, researchers tested 1234567 prompts; the model's answers (see §4.2) were \
                         \"mostly correct\" — 日本語も少し。\n\tfn f(x: u32) -> u32 { x * 2 }\n";
        let text = paragraph.repeat(4096 / 50);
        // A fresh tokenizer: no word is in its cache yet.
        let tokenizer = smollm();
        let start = Instant::now();
        let ids = tokenizer.encode(&text, false).unwrap();
        let elapsed = start.elapsed();
        println!("encoded {} tokens in {elapsed:?}", ids.len());
        assert!(ids.len() >= 4096, "only {} tokens", ids.len());
        assert!(
            elapsed.as_millis() < 500,
            "encoding {} tokens took {elapsed:?}",
            ids.len()
        );
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
    }

    #[test]
    fn unknown_id_is_an_error() {
        let tokenizer = smollm();
        let size = tokenizer.vocab_size();
        assert_eq!(size, 49152);
        match tokenizer.decode(&[5, size as u32], false) {
            Err(ModelError::UnknownToken { id, vocab_size }) => {
                assert_eq!((id as usize, vocab_size), (size, size))
            }
            other => panic!("expected UnknownToken, got {other:?}"),
        }
        assert!(matches!(
            tokenizer.stream_decoder().push(u32::MAX),
            Err(ModelError::UnknownToken { id: u32::MAX, .. })
        ));
        assert_eq!(tokenizer.token_text(size as u32), None);
    }

    /// A minimal GGUF v3 file with string and string-array metadata and no tensors.
    fn write_gguf(path: &Path, metadata: &[(&str, Metadata)]) {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            string(&mut out, key);
            match value {
                Metadata::String(s) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Metadata::Strings(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for item in *items {
                        string(&mut out, item);
                    }
                }
            }
        }
        std::fs::File::create(path)
            .unwrap()
            .write_all(&out)
            .unwrap();
    }

    enum Metadata {
        String(&'static str),
        Strings(&'static [&'static str]),
    }

    #[test]
    fn missing_tokenizer_keys_are_named() {
        let folder = tempfile::tempdir().unwrap();

        let path = folder.path().join("no-tokenizer.gguf");
        write_gguf(
            &path,
            &[("general.architecture", Metadata::String("llama"))],
        );
        let error = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
        assert!(
            matches!(&error, ModelError::MissingKey { key, .. } if key == "tokenizer.ggml.model"),
            "{error}"
        );
        assert!(
            error.to_string().contains("tokenizer.ggml.model"),
            "{error}"
        );

        let path = folder.path().join("no-merges.gguf");
        write_gguf(
            &path,
            &[
                ("tokenizer.ggml.model", Metadata::String("gpt2")),
                ("tokenizer.ggml.pre", Metadata::String("gpt-2")),
                (
                    "tokenizer.ggml.tokens",
                    Metadata::Strings(&["a", "b", "ab"]),
                ),
            ],
        );
        let error = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("tokenizer.ggml.merges"),
            "{error}"
        );

        let path = folder.path().join("no-tokens.gguf");
        write_gguf(
            &path,
            &[("tokenizer.ggml.model", Metadata::String("llama"))],
        );
        let error = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("tokenizer.ggml.tokens"),
            "{error}"
        );

        let path = folder.path().join("odd-pre.gguf");
        write_gguf(
            &path,
            &[
                ("tokenizer.ggml.model", Metadata::String("gpt2")),
                ("tokenizer.ggml.pre", Metadata::String("no-such-pre")),
                ("tokenizer.ggml.tokens", Metadata::Strings(&["a"])),
                ("tokenizer.ggml.merges", Metadata::Strings(&[])),
            ],
        );
        let error = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
        assert!(error.to_string().contains("no-such-pre"), "{error}");
    }
}
