# memmap-on-memory: patch series + harness.  See README.md.
# Kernel paths, configs and passes live in harness/passes.py: the kernel
# targets build through the harness, and the harness finds what they built.
PY := /usr/bin/python3
BUILD := build
HARNESS := $(PY) -m harness
PASSES ?= main

.PHONY: all deps base tree export check check-series check-topics kernel kernel-debug kernel-kasan kernel-nothp kernel-stock kernel-stock-nothp initramfs deps-cross deps-arm64 kernels-arm64 initramfs-arm64 test-arm64 bench-arm64 cross demo test test-full run soak bench bench-main bench-nothp unit list clean help

all: help
help:
	@echo "make demo          build the kernel, measure a 16 GiB hot-add with =0 and =1, write results/demo/"
	@echo "make test          every test: harness unit tests, KUnit, scenarios (closing line: N passed, N failed)"
	@echo "make test-full     make test, plus the KASAN/kmemleak pass, the stock kernels in the"
	@echo "                   scenarios that compare with the base, and make check"
	@echo "make run SCENARIOS='a b' PASSES=main,nothp"
	@echo "                   build only the kernels those passes need, run only those scenarios"
	@echo "make soak          1000 add/online/offline/remove cycles per path on the debug kernel (SOAK_CYCLES=N)"
	@echo "make tree          build/linux = pinned base + git am of patches/series"
	@echo "make export        write build/linux's commits back to patches/"
	@echo "make check         checkpatch.pl --strict on every patch; the touched objects built in Debian's"
	@echo "                   config, x86 with one option off in turn, KASAN, i386 and 3 cross builds"
	@echo "                   (no error, no warning, modules need only exported symbols); sparse, W=1"
	@echo "                   and kernel-doc against the base"
	@echo "make check-series  build after every patch (FROM=N: from commit N of the whole line on);"
	@echo "                   TOPIC=name: that topic on the base + the topics it needs, built"
	@echo "                   after every patch, then its scenarios on its tip (NORUN=1: not those)"
	@echo "make check-topics  make check-series TOPIC=name for every topic, in order (NORUN=1 too)"
	@echo "make cross         make check's builds for arm64, ppc64le, riscv64 only (CONFIGS='arm64 riscv64'"
	@echo "                   for some; any of make check's configurations by name)"
	@echo "make kernel        build the main test kernel (kernel-debug, kernel-nothp, kernel-kasan,"
	@echo "                   kernel-stock, kernel-stock-nothp: the others; harness/passes.py says what)"
	@echo "make bench         stock =0, stock =1 and ours =1 on every path, write results/bench/;"
	@echo "                   then the nothp kernels (stock =1, stock =force, ours =1), results/bench-nothp/"
	@echo "make test-arm64    the arm64 passes (4, 16 and 64 KiB pages, QEMU virt, UEFI, TCG) with the"
	@echo "                   stock kernels compared; kernels-arm64, initramfs-arm64: what they boot"
	@echo "make list          the scenarios and the passes they run on"
	@echo "python3 -m harness shell SCENARIO   a shell on that scenario's guest (see README)"
	@echo "python3 -m harness parse FILE       re-judge a saved console log"

deps:
	@scripts/deps.sh

base: deps
	@scripts/base.sh

tree: deps
	@scripts/tree.sh $(if $(FORCE),--force)

export:
	@scripts/export.sh

check: tree deps-cross
	@scripts/check.sh
	@scripts/check-build.sh
	@scripts/check-static.sh

# make check's tools: Debian's cross compilers and sparse
deps-cross:
	@scripts/deps.sh --cross

cross: tree deps-cross
	@scripts/check-build.sh $(or $(CONFIGS),arm64 ppc64le riscv64)

check-series: deps $(if $(TOPIC),$(if $(NORUN),,initramfs $(if $(filter arm64,$(TOPIC)),initramfs-arm64)))
	@scripts/check-series.sh $(if $(TOPIC),--topic $(TOPIC) $(if $(NORUN),--no-run),$(FROM))

# every topic on its own, one after the other (make check-series TOPIC=...)
check-topics: deps $(if $(NORUN),,initramfs initramfs-arm64)
	@for t in $$(sed -nE 's/^# topic ([a-z0-9.-]+);.*/\1/p' patches/series); do \
		scripts/check-series.sh --topic $$t $(if $(NORUN),--no-run) || exit 1; done

kernel: tree
	@$(HARNESS) build main

kernel-debug kernel-kasan kernel-nothp: kernel-%: tree
	@$(HARNESS) build $*

# the base without the series (build/stock), same configs
kernel-stock kernel-stock-nothp: kernel-%: deps
	@$(HARNESS) build $*

# the guest image, and the same with the peer suites (bash, stress-ng, the
# mm selftests built statically) for the peers scenario
initramfs: tree
	@$(HARNESS) image

# arm64: Debian's cross compiler, qemu-system-aarch64 and its UEFI firmware;
# the kernels for each page size, ours and the base's; the same guest image
# with Debian's arm64 busybox
ARM64_KERNELS := $(foreach k,4k 16k 64k,arm64-$(k) stock-arm64-$(k))
deps-arm64:
	@scripts/deps.sh --arm64

$(addprefix kernel-,$(ARM64_KERNELS)): kernel-%: tree deps-arm64
	@$(HARNESS) build $*

kernels-arm64: tree deps-arm64
	@$(HARNESS) build $(ARM64_KERNELS)

initramfs-arm64: tree deps-arm64
	@scripts/initramfs.sh -a arm64 $(BUILD)/guest/initrd-arm64.cpio

# every scenario of the arm64 passes, each compared with the base
test-arm64: kernels-arm64 initramfs-arm64
	@$(HARNESS) run --no-build --passes arm64-4k,arm64-16k,arm64-64k --stock $(SCENARIOS)

# the KTAP fixture tests read kunit_tool's test data from build/linux
unit: tree
	@$(HARNESS) unit

list:
	@$(HARNESS) list

demo: kernel initramfs
	@$(HARNESS) demo

# CI runs this one (.ci/run): the main, debug and nothp passes; the KASAN
# pass and the stock kernels are make test-full's
test: kernel kernel-debug kernel-nothp initramfs
	@$(HARNESS) test $(SCENARIOS)

# the same, the KASAN pass, and the scenarios that compare with the base
# boot the untouched base (same configs) and check the series does no worse.
# The KASAN pass, the longest, runs in a lane of its own (--lanes 2): its
# kernel is built first, and its guests run while the other kernels build
# and then while the other passes run (--build: one build at a time)
test-full: check initramfs initramfs-arm64
	@$(HARNESS) test --passes main,debug,nothp,kasan,arm64-4k,arm64-16k,arm64-64k --stock --full --lanes 2 --build $(SCENARIOS)

# some scenarios on some passes: only the kernels those need are built
# (STOCK=1: and the stock kernels of those passes, compared with)
run: tree initramfs
	@$(HARNESS) run --passes $(PASSES) $(if $(STOCK),--stock) $(SCENARIOS)

SOAK_CYCLES ?= 1000
soak: tree initramfs
	@$(HARNESS) run --passes debug --soak-cycles $(SOAK_CYCLES) soak

# three runs, one table each: the main config, the one without THP, arm64
bench: bench-main bench-nothp bench-arm64

bench-main: kernel kernel-stock initramfs
	@$(HARNESS) bench $(BENCH_ARGS)

bench-nothp: kernel-nothp kernel-stock-nothp initramfs
	@$(HARNESS) bench --set nothp $(BENCH_ARGS)

bench-arm64: kernels-arm64 initramfs-arm64
	@$(HARNESS) bench --set arm64 $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)/out $(BUILD)/runs $(BUILD)/guest
