#!/usr/bin/env bash
# avx512-in-bochs.sh - run pipespec-model's kernel unit tests on an emulated AVX-512 CPU.
#
# The AVX-512 matrix kernels (crates/model/src/kernels/simd/avx512.rs) are chosen at run time
# and only where the CPU has AVX512F/BW/VL/VNNI + FMA + F16C, so on a machine without AVX-512
# the tests skip them ("note: this CPU lacks avx512 ..."). This script runs them anyway: it
# builds the pipespec-model lib test binary for x86-64-v3 (AVX-512 stays runtime-detected, not
# enabled globally), packs it with busybox into an initramfs, boots a Debian kernel with it in
# the Bochs emulator with CPU model corei7_icelake_u (AVX512F/BW/VL/VNNI, FMA, F16C), runs the
# test binary there (default: --test-threads=1 --nocapture) and streams the guest's serial
# console here. It exits with the guest test binary's exit status; if the guest never prints
# its exit-status marker (timeout, kernel panic, emulator crash) it exits nonzero (124 on a
# timeout, 125 otherwise).
#
# Usage: scripts/avx512-in-bochs.sh [FILTER [TEST-ARGS...]]
#   FILTER     libtest name filter, default "kernels::tests" ("" runs every lib test).
#   TEST-ARGS  replace the default test arguments "--test-threads=1 --nocapture",
#              e.g.: scripts/avx512-in-bochs.sh kernels::tests::extremes --test-threads=1
#
# Needs: x86-64 Debian/Ubuntu with apt and root (or sudo) to install what is missing: bochs,
# bochsbios, vgabios, busybox-static, isolinux, syslinux-common, xorriso, cpio, binutils; a
# Debian linux-image-*-amd64 package is fetched with `apt-get download` (only the kernel image
# is used, no modules). Needs cargo and rustc on PATH. Bochs is slow (tens of MIPS): booting
# takes a few minutes, the tests more (see BOCHS_TIMEOUT). Bochs here has no headless display
# library, so it uses its VNC (rfb) display, which listens on a TCP port from 5900 up while it
# runs; nobody has to connect.
#
# Environment:
#   BOCHS_DIR         cache and work directory (default ~/.cache/pipespec-bochs): the kernel,
#                     the feature probe, the initramfs/ISO, bochsrc and logs of the last run.
#   BOCHS_TARGET_DIR  cargo --target-dir for the test binary (default /tmp/bochs-target, so
#                     this never waits on the cargo lock of the repository's own target/).
#   BOCHS_RUSTFLAGS   RUSTFLAGS for that build (default "-C target-cpu=x86-64-v3"; overrides
#                     the repository's target-cpu=native, which would not run in the guest).
#   BOCHS_CPU         Bochs CPU model (default corei7_icelake_u).
#   BOCHS_MEGS        guest memory in MiB (default 1024).
#   BOCHS_TIMEOUT     seconds before the emulator is killed (default 5400).
#   BOCHS_KERNEL      use this bzImage instead of downloading a Debian kernel.
#   BOCHS_VERBOSE=1   show the full kernel log (default: the kernel boots with "quiet").
#
# Kernel workarounds (all on the guest command line, for Debian's 6.1 kernel on Bochs 2.7):
#   clearcpuid=pku          Bochs 2.7 returns zeros for CPUID leaf 0xD sub-leaf 9 (PKRU), so
#                           Linux finds the xstate layout "misordered" and turns XSAVE off:
#                           then no AVX of any width is usable in the guest.
#   clearcpuid=xsaves,xsavec  Bochs reports the compacted-format XSAVE size as the standard
#                           one; Linux's size check fails and again turns XSAVE off. Without
#                           them Linux uses the standard format, which Bochs gets right.
#   clearcpuid=fsrm         Bochs lacks MSR IA32_MISC_ENABLE, so Linux disables fast strings
#                           (clears ERMS) but keeps FSRM; 6.1's memmove then skips both its
#                           short-copy path and rep movsb, overruns on the first copy under 32
#                           bytes and the boot dies in printk.
#   clearcpuid only hides features from the kernel; user space still sees CPUID as emulated,
#   so is_x86_feature_detected! reports the Icelake AVX-512 features (the probe prints them).
set -euo pipefail

FILTER=${1-kernels::tests}
if [ $# -gt 0 ]; then shift; fi
if [ $# -gt 0 ]; then
    TEST_ARGS=("$@")
else
    TEST_ARGS=(--test-threads=1 --nocapture)
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BOCHS_DIR=${BOCHS_DIR:-$HOME/.cache/pipespec-bochs}
TARGET_DIR=${BOCHS_TARGET_DIR:-/tmp/bochs-target}
RUSTFLAGS_GUEST=${BOCHS_RUSTFLAGS:--C target-cpu=x86-64-v3}
CPU_MODEL=${BOCHS_CPU:-corei7_icelake_u}
MEGS=${BOCHS_MEGS:-1024}
TIMEOUT=${BOCHS_TIMEOUT:-5400}
KARGS="console=ttyS0,115200 nokaslr mitigations=off clearcpuid=pku,xsaves,xsavec,fsrm init_on_alloc=0"
if [ "${BOCHS_VERBOSE:-0}" = 1 ]; then KARGS="$KARGS printk.time=1"; else KARGS="$KARGS quiet"; fi

START_MARK="=== pipespec-bochs: test binary starting ==="
END_MARK_PREFIX="=== pipespec-bochs: test exit status"

say() { printf '[avx512-in-bochs] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mkdir -p "$BOCHS_DIR"
exec 9>"$BOCHS_DIR/lock"
flock -n 9 || die "another run holds $BOCHS_DIR/lock (set BOCHS_DIR to run in parallel)"

# --- 1. host packages -------------------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
PKGS=(bochs bochsbios vgabios busybox-static isolinux syslinux-common xorriso cpio binutils)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || { as_root apt-get update >&2 && as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
command -v cargo >/dev/null || die "cargo is not on PATH"
command -v rustc >/dev/null || die "rustc is not on PATH"
BUSYBOX=/bin/busybox
ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
LDLINUX_C32=/usr/lib/syslinux/modules/bios/ldlinux.c32
for f in "$BUSYBOX" "$ISOLINUX_BIN" "$LDLINUX_C32" /usr/share/bochs/BIOS-bochs-latest /usr/share/vgabios/vgabios.bin; do
    [ -e "$f" ] || die "$f is missing"
done

# --- 2. guest kernel --------------------------------------------------------------------------
if [ -n "${BOCHS_KERNEL:-}" ]; then
    KERNEL=$BOCHS_KERNEL
    [ -f "$KERNEL" ] || die "BOCHS_KERNEL=$KERNEL does not exist"
else
    KERNEL=$BOCHS_DIR/kernel/vmlinuz
    if [ ! -s "$KERNEL" ]; then
        kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-get update?)"
        say "fetching kernel package $kpkg"
        dl=$BOCHS_DIR/kernel/dl
        rm -rf "$dl" && mkdir -p "$dl"
        sandbox=()   # as root, apt's _apt sandbox user cannot write under $HOME
        if [ "$(id -u)" = 0 ]; then sandbox=(-o APT::Sandbox::User=root); fi
        (cd "$dl" && apt-get "${sandbox[@]}" download "$kpkg" >&2)
        dpkg-deb -x "$dl"/"$kpkg"_*.deb "$dl/x"
        vmlinuz=$(ls "$dl"/x/boot/vmlinuz-* | head -1)
        cp "$vmlinuz" "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
        echo "$kpkg" > "$BOCHS_DIR/kernel/package"
        rm -rf "$dl"
    fi
fi

# --- 3. test binary and feature probe ---------------------------------------------------------
say "building the pipespec-model lib tests (RUSTFLAGS=\"$RUSTFLAGS_GUEST\", --target-dir $TARGET_DIR)"
TEST_BIN=$(cd "$REPO" && RUSTFLAGS="$RUSTFLAGS_GUEST" cargo test --release -p pipespec-model --lib \
    --no-run --target-dir "$TARGET_DIR" --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -n "$TEST_BIN" ] && [ -x "$TEST_BIN" ] || die "cargo did not report a test executable"
say "test binary: $TEST_BIN"

PROBE=$BOCHS_DIR/cpu-probe
if [ ! -x "$PROBE" ]; then
    cat > "$BOCHS_DIR/cpu-probe.rs" <<'EOF'
// What the guest's user space sees: the features CpuPath::Avx512 and CpuPath::Avx2 need.
fn main() {
    let features = [
        ("avx2", is_x86_feature_detected!("avx2")),
        ("fma", is_x86_feature_detected!("fma")),
        ("f16c", is_x86_feature_detected!("f16c")),
        ("avx512f", is_x86_feature_detected!("avx512f")),
        ("avx512bw", is_x86_feature_detected!("avx512bw")),
        ("avx512vl", is_x86_feature_detected!("avx512vl")),
        ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
    ];
    for (name, on) in features {
        println!("pipespec-bochs: is_x86_feature_detected!(\"{name}\") = {on}");
    }
}
EOF
    rustc -O -C target-cpu=x86-64-v3 -o "$PROBE.tmp" "$BOCHS_DIR/cpu-probe.rs" && mv "$PROBE.tmp" "$PROBE"
fi

# --- 4. initramfs and ISO ---------------------------------------------------------------------
RUN=$BOCHS_DIR/run
ROOT=$RUN/root
ISO_DIR=$RUN/iso
rm -rf "$ROOT" "$ISO_DIR"
mkdir -p "$ROOT"/{bin,proc,sys,dev,tmp,root,opt/pipespec} "$ISO_DIR/isolinux"
cp "$BUSYBOX" "$ROOT/bin/busybox"
objcopy --strip-debug "$TEST_BIN" "$ROOT/opt/pipespec/tests"
cp "$PROBE" "$ROOT/opt/pipespec/cpu-probe"
# The shared libraries (and the dynamic loader) the binaries need, at the paths ldd names.
for bin in "$TEST_BIN" "$PROBE"; do
    ldd "$bin" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}'
done | sort -u | while read -r lib; do
    cp -L --parents "$lib" "$ROOT"
done
# The test arguments, one a line (read back by /init without any shell quoting).
{ printf '%s\n' "$FILTER"; printf '%s\n' "${TEST_ARGS[@]}"; } > "$ROOT/opt/pipespec/args"
cat > "$ROOT/init" <<EOF
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
echo "pipespec-bochs: guest up, kernel \$(uname -r), guest uptime \$(cut -d' ' -f1 /proc/uptime)s"
echo "pipespec-bochs: /proc/cpuinfo:\$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512(f|bw|vl|_vnni))\$' | sed 's/^/ /' | tr -d '\n')"
grep -m1 '^model name' /proc/cpuinfo | sed 's/^/pipespec-bochs: /'
/opt/pipespec/cpu-probe
set --
while IFS= read -r arg; do set -- "\$@" "\$arg"; done < /opt/pipespec/args
echo "pipespec-bochs: running tests \$*"
echo "$START_MARK"
cd /tmp
/opt/pipespec/tests "\$@"
rc=\$?
echo "pipespec-bochs: guest uptime \$(cut -d' ' -f1 /proc/uptime)s"
echo "$END_MARK_PREFIX \$rc ==="
sleep 2
poweroff -f
EOF
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$ISO_DIR/initrd"
cp "$KERNEL" "$ISO_DIR/vmlinuz"
cp "$ISOLINUX_BIN" "$LDLINUX_C32" "$ISO_DIR/isolinux/"
cat > "$ISO_DIR/isolinux/isolinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd
  APPEND $KARGS
EOF
xorriso -as mkisofs -quiet -o "$RUN/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$ISO_DIR" 2>/dev/null \
    || die "xorriso failed to build $RUN/boot.iso"

# --- 5. Bochs ---------------------------------------------------------------------------------
SERIAL=$RUN/serial.log
BOCHS_LOG=$RUN/bochs.log
BOCHS_OUT=$RUN/bochs.out
rm -f "$SERIAL" "$BOCHS_LOG" "$BOCHS_OUT"
cat > "$RUN/bochsrc" <<EOF
megs: $MEGS
cpu: model=$CPU_MODEL, count=1, ips=100000000, reset_on_triple_fault=0
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
display_library: rfb, options="timeout=0"
pci: enabled=1, chipset=i440fx
ata0: enabled=1
ata0-master: type=cdrom, path="$RUN/boot.iso", status=inserted
boot: cdrom
clock: sync=none, time0=local
com1: enabled=1, mode=file, dev="$SERIAL"
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
speaker: enabled=0
mouse: enabled=0
log: $BOCHS_LOG
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
EOF
# This Bochs has its debugger built in and stops at a prompt first: "c" continues; at the
# end of the script (or after a panic) the prompt reads end-of-file and Bochs quits.
printf 'c\n' > "$RUN/bochs.rc"

BOCHS_PID=
TAIL_PID=
cleanup() {
    if [ -n "$BOCHS_PID" ] && kill -0 "$BOCHS_PID" 2>/dev/null; then kill "$BOCHS_PID" 2>/dev/null || true; fi
    if [ -n "$TAIL_PID" ] && kill -0 "$TAIL_PID" 2>/dev/null; then kill "$TAIL_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

KNAME=$KERNEL
if [ -z "${BOCHS_KERNEL:-}" ] && [ -s "$BOCHS_DIR/kernel/package" ]; then KNAME=$(cat "$BOCHS_DIR/kernel/package"); fi
say "booting $KNAME in Bochs ($CPU_MODEL, ${MEGS} MiB), timeout ${TIMEOUT}s; guest console follows"
t0=$SECONDS
(cd "$RUN" && exec bochs-bin -q -f bochsrc -rc bochs.rc < /dev/null > "$BOCHS_OUT" 2>&1) &
BOCHS_PID=$!
# The guest console, live (tail ends by itself once Bochs has exited).
tail --pid="$BOCHS_PID" -n +1 -F "$SERIAL" 2>/dev/null | tr -d '\r' &
TAIL_PID=$!

t_start= t_end= timed_out=0 panicked=0
while kill -0 "$BOCHS_PID" 2>/dev/null; do
    if [ -z "$t_start" ] && grep -qF "$START_MARK" "$SERIAL" 2>/dev/null; then t_start=$((SECONDS - t0)); fi
    if grep -qF "$END_MARK_PREFIX" "$SERIAL" 2>/dev/null; then
        t_end=$((SECONDS - t0))
        for _ in $(seq 30); do kill -0 "$BOCHS_PID" 2>/dev/null || break; sleep 1; done
        break
    fi
    if grep -qE 'Kernel panic - not syncing|end Kernel panic' "$SERIAL" 2>/dev/null; then
        panicked=1; sleep 3; break
    fi
    if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then timed_out=1; break; fi
    sleep 2
done
if kill -0 "$BOCHS_PID" 2>/dev/null; then kill "$BOCHS_PID" 2>/dev/null || true; fi
wait "$BOCHS_PID" 2>/dev/null || true
BOCHS_PID=
for _ in 1 2 3 4 5; do kill -0 "$TAIL_PID" 2>/dev/null || break; sleep 1; done
kill "$TAIL_PID" 2>/dev/null || true
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=
total=$((SECONDS - t0))
# Bochs may power off between two looks at the log; then the end is known to within a look.
if [ -z "$t_end" ] && grep -qF "$END_MARK_PREFIX" "$SERIAL" 2>/dev/null; then t_end=$total; fi
if [ -z "$t_start" ] && grep -qF "$START_MARK" "$SERIAL" 2>/dev/null; then t_start=$total; fi

touch "$SERIAL"
rc=$(sed -n "s/.*$END_MARK_PREFIX \([0-9][0-9]*\) ===.*/\1/p" "$SERIAL" | tail -1)
echo
if [ -n "$t_start" ]; then say "boot to test start: ${t_start}s"; fi
if [ -n "$t_start" ] && [ -n "$t_end" ]; then say "tests (to the exit-status line): $((t_end - t_start))s"; fi
say "total in Bochs: ${total}s (logs: $SERIAL, $BOCHS_OUT, $BOCHS_LOG)"
if [ -z "$rc" ]; then
    if [ "$timed_out" = 1 ]; then
        say "error: no exit status from the guest within ${TIMEOUT}s (raise BOCHS_TIMEOUT?)"
        rc=124
    else
        [ "$panicked" = 1 ] && say "error: the guest kernel panicked"
        say "error: the guest ended without printing its exit status; last Bochs output:"
        tail -n 15 "$BOCHS_OUT" >&2 || true
        rc=125
    fi
    exit "$rc"
fi
if grep -q "note: this CPU lacks avx512" "$SERIAL"; then
    say "warning: the guest says it lacks avx512: the AVX-512 kernels were NOT tested"
fi
say "guest test binary exit status: $rc"
exit "$rc"
