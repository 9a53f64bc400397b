//! `pipespec info`: what a GGUF file holds.

use std::collections::BTreeMap;

use anyhow::Result;
use pipespec_model::gguf::GgufFile;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::LoraAdapter;

use crate::cli::InfoArgs;
use crate::loading;

pub fn run(args: InfoArgs) -> Result<()> {
    let path = loading::resolve_model_path(args.model.as_deref())?;
    let file = GgufFile::open(&path)?;
    if file.get_str("general.type").ok() == Some("adapter") {
        drop(file);
        return describe_adapter(&path);
    }
    drop(file);
    let loaded = loading::load(&path)?;
    let c = &loaded.model.config;
    println!("file:               {}", path.display());
    println!("gguf version:       {}", loaded.model.file().version);
    if let Ok(name) = loaded.model.file().get_str("general.name") {
        println!("name:               {name}");
    }
    println!("architecture:       {}", c.architecture.name());
    println!("layers:             {}", c.layer_count);
    println!("hidden size:        {}", c.hidden_size);
    println!("intermediate size:  {}", c.intermediate_size);
    println!(
        "heads (q / kv):     {} / {} (head dim {})",
        c.head_count, c.kv_head_count, c.head_dim
    );
    println!("context length:     {}", c.context_length);
    println!(
        "rope:               base {}, dims {}, {:?}",
        c.rope_base, c.rope_dim, c.rope_style
    );
    println!("vocab size:         {}", c.vocab_size);
    let mut types: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for tensor in &loaded.model.file().tensors {
        let entry = types.entry(format!("{:?}", tensor.dtype)).or_default();
        entry.0 += 1;
        entry.1 += tensor.byte_len;
    }
    println!(
        "weights:            {:.1} MB",
        loaded.model.weight_bytes() as f64 / 1e6
    );
    for (dtype, (count, bytes)) in types {
        println!(
            "  {dtype:<6} {count:>4} tensors, {:.1} MB",
            bytes as f64 / 1e6
        );
    }
    println!("kernels:            {}", load_summary(&loaded.model));
    print_tokenizer(&loaded.tokenizer);
    Ok(())
}

/// The CPU path, what loading cost and the memory held, in one line.
pub fn load_summary(model: &pipespec_model::Model) -> String {
    let report = model.load_report();
    let resident = pipespec_model::resident_bytes()
        .map(|bytes| format!(", {:.1} MB resident", bytes as f64 / 1e6))
        .unwrap_or_default();
    format!(
        "{} ({} in {:.2} s, {:.1} MB owned{resident})",
        report.cpu,
        if report.packed { "repacked" } else { "raw" },
        report.seconds,
        report.owned_bytes as f64 / 1e6,
    )
}

fn print_tokenizer(tokenizer: &Tokenizer) {
    println!(
        "tokenizer:          {} (pre-tokenizer {})",
        tokenizer.model_kind(),
        tokenizer.pre_tokenizer()
    );
    let show = |id: Option<u32>| match id {
        Some(id) => format!("{id} {:?}", tokenizer.token_text(id).unwrap_or("")),
        None => "none".into(),
    };
    println!(
        "  bos:              {} (added: {})",
        show(tokenizer.bos_id()),
        tokenizer.adds_bos()
    );
    println!("  eos:              {}", show(tokenizer.eos_id()));
    let eog: Vec<String> = tokenizer
        .end_of_generation_ids()
        .iter()
        .map(|&id| show(Some(id)))
        .collect();
    println!("  end of generation: {}", eog.join(", "));
}

/// What a LoRA adapter file holds: its base architecture, alpha, and modules by matrix.
fn describe_adapter(path: &std::path::Path) -> Result<()> {
    let adapter = LoraAdapter::open(path)?;
    println!("file:               {}", path.display());
    println!("type:               LoRA adapter");
    if let Some(name) = &adapter.name {
        println!("name:               {name}");
    }
    println!("architecture:       {}", adapter.architecture);
    println!("alpha:              {}", adapter.alpha);
    let (low, high) = adapter.rank_range();
    let ranks = if low == high {
        format!("{low}")
    } else {
        format!("{low} to {high}")
    };
    println!("rank:               {ranks}");
    let mut targets: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for module in &adapter.modules {
        let entry = targets.entry(module.target.tensor_stem()).or_default();
        entry.0 += 1;
        entry.1 += module.a.len() + module.b.len();
    }
    let parameters: usize = targets.values().map(|t| t.1).sum();
    println!(
        "modules:            {} ({parameters} parameters)",
        adapter.modules.len()
    );
    for (stem, (count, values)) in targets {
        println!("  {stem:<17} {count:>3} modules, {values} parameters");
    }
    Ok(())
}
