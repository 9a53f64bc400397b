//! Which instruction set the kernels run on: detected once, or forced with `PIPESPEC_CPU`.

use std::sync::OnceLock;

use super::KernelError;

/// The environment variable that forces a path: `avx512`, `avxvnni`, `avx2` or `scalar`.
pub const CPU_ENV: &str = "PIPESPEC_CPU";

/// A set of kernels: every path computes bit-identical results, at different speeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuPath {
    /// Portable code, 8 rows per step.
    Scalar,
    /// AVX2 with FMA and F16C, 8 rows per 256-bit vector.
    Avx2,
    /// AVX2 with FMA, F16C and AVX-VNNI (byte dot products in one instruction), 8 rows per
    /// 256-bit vector: CPUs with VNNI but without AVX-512.
    AvxVnni,
    /// AVX-512 F/BW/VL with VNNI, FMA and F16C, 16 rows per 512-bit vector.
    Avx512,
}

impl CpuPath {
    /// Every path, fastest first.
    pub const ALL: [CpuPath; 4] = [
        CpuPath::Avx512,
        CpuPath::AvxVnni,
        CpuPath::Avx2,
        CpuPath::Scalar,
    ];

    /// The name `PIPESPEC_CPU` takes.
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Scalar => "scalar",
            CpuPath::Avx2 => "avx2",
            CpuPath::AvxVnni => "avxvnni",
            CpuPath::Avx512 => "avx512",
        }
    }

    /// The CPU features the path needs.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            CpuPath::Scalar => &[],
            CpuPath::Avx2 => &["avx2", "fma", "f16c"],
            CpuPath::AvxVnni => &["avx2", "fma", "f16c", "avxvnni"],
            CpuPath::Avx512 => &[
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
                "fma",
                "f16c",
            ],
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                CpuPath::Scalar => true,
                CpuPath::Avx2 => {
                    is_x86_feature_detected!("avx2")
                        && is_x86_feature_detected!("fma")
                        && is_x86_feature_detected!("f16c")
                }
                CpuPath::AvxVnni => {
                    CpuPath::Avx2.available() && is_x86_feature_detected!("avxvnni")
                }
                CpuPath::Avx512 => {
                    is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                        && is_x86_feature_detected!("fma")
                        && is_x86_feature_detected!("f16c")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == CpuPath::Scalar
        }
    }

    /// The fastest path this CPU has.
    pub fn best() -> CpuPath {
        CpuPath::ALL
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(CpuPath::Scalar)
    }

    /// Rows per vector: the packed layouts interleave this many weight rows.
    pub fn lanes(self) -> usize {
        match self {
            CpuPath::Avx512 => 16,
            CpuPath::Scalar | CpuPath::Avx2 | CpuPath::AvxVnni => 8,
        }
    }

    /// The path named by `value` (case-insensitive), if this CPU has it.
    pub fn parse(value: &str) -> Result<CpuPath, KernelError> {
        let wanted = value.trim().to_ascii_lowercase();
        let path = CpuPath::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| KernelError::UnknownCpuPath {
                value: value.to_string(),
            })?;
        if !path.available() {
            return Err(KernelError::CpuPathUnavailable {
                path: path.name(),
                features: path.features().join(", "),
            });
        }
        Ok(path)
    }

    /// The path every model loaded by this process uses: `PIPESPEC_CPU` if set (read once),
    /// else the best available.
    pub fn selected() -> Result<CpuPath, KernelError> {
        static SELECTED: OnceLock<Result<CpuPath, KernelError>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(CPU_ENV) {
                Ok(value) if !value.trim().is_empty() => CpuPath::parse(&value),
                _ => Ok(CpuPath::best()),
            })
            .clone()
    }
}

impl std::fmt::Display for CpuPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
