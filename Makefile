# memmap-on-memory: patch series + harness.  See README.md.
PY := /usr/bin/python3
BUILD := build
KERNEL := $(BUILD)/out/main/arch/x86/boot/bzImage
DEBUG_KERNEL := $(BUILD)/out/debug/arch/x86/boot/bzImage
KASAN_KERNEL := $(BUILD)/out/kasan/arch/x86/boot/bzImage
STOCK_KERNEL := $(BUILD)/out/stock/arch/x86/boot/bzImage
NOTHP_KERNEL := $(BUILD)/out/nothp/arch/x86/boot/bzImage
STOCK_NOTHP_KERNEL := $(BUILD)/out/stock-nothp/arch/x86/boot/bzImage
INITRD := $(BUILD)/guest/initrd.cpio
PEERS_INITRD := $(BUILD)/guest/initrd-peers.cpio
HARNESS := $(PY) -m harness

.PHONY: all deps base tree export check check-series kernel kernel-debug kernel-kasan kernel-nothp kernel-stock kernel-stock-nothp initramfs deps-cross cross demo test test-full soak bench bench-main bench-nothp unit list clean help

all: help
help:
	@echo "make demo          build the kernel, measure a 16 GiB hot-add with =0 and =1, write results/demo/"
	@echo "make test          every test: harness unit tests, KUnit, scenarios (closing line: N passed, N failed)"
	@echo "make test-full     make test, plus the KASAN/kmemleak pass, the stock kernels in the"
	@echo "                   scenarios that compare with the base (pagecache-add, vmem-kernel,"
	@echo "                   peers), and make cross"
	@echo "make soak          1000 add/online/offline/remove cycles per path on the debug kernel (SOAK_CYCLES=N)"
	@echo "make tree          build/linux = pinned base + git am of patches/series"
	@echo "make export        write build/linux's commits back to patches/"
	@echo "make check         checkpatch.pl --strict on every patch"
	@echo "make check-series  build after every patch (FROM=N: from patch N on)"
	@echo "make cross         cross-build the files the series touches for arm64, powerpc (ppc64le),"
	@echo "                   riscv (ARCHES='arm64 riscv' for some)"
	@echo "make kernel        build the main test kernel"
	@echo "make kernel-debug  build the debug kernel (main + configs/debug.config)"
	@echo "make kernel-nothp  build the kernel without THP and HUGETLB (main + configs/nothp.config)"
	@echo "make kernel-kasan  build the KASAN and kmemleak kernel (main + debug + configs/kasan.config)"
	@echo "make kernel-stock  build the untouched base with the main config (for make bench)"
	@echo "make bench         stock =0, stock =1 and ours =1 on every path, write results/bench/;"
	@echo "                   then the nothp kernels (stock =1, stock =force, ours =1), results/bench-nothp/"
	@echo "make test SCENARIOS='dimm-mode1 kunit'   run some scenarios (make list names them)"

deps:
	@scripts/deps.sh

base: deps
	@scripts/base.sh

tree: deps
	@scripts/tree.sh $(if $(FORCE),--force)

export:
	@scripts/export.sh

check: tree
	@scripts/check.sh

# the files the series touches, cross-built for arm64, ppc64le and riscv64
deps-cross:
	@scripts/deps.sh --cross

cross: tree deps-cross
	@scripts/cross.sh $(ARCHES)

check-series: deps
	@scripts/check-series.sh $(FROM)

kernel: tree
	@scripts/build.sh -c main -o $(BUILD)/out/main

kernel-debug: tree
	@scripts/build.sh -c main -c debug -o $(BUILD)/out/debug

# generic KASAN and kmemleak on top of the debug kernel (small adds only)
kernel-kasan: tree
	@scripts/build.sh -c main -c debug -c kasan -o $(BUILD)/out/kasan

# 4 MiB pageblocks: the memmap of a 128 MiB block ends inside one
kernel-nothp: tree
	@scripts/build.sh -c main -c nothp -o $(BUILD)/out/nothp

# the base without the series, same config; the series' own options
# (its KUnit suites) do not exist there, hence --partial
kernel-stock: deps
	@scripts/stock.sh
	@scripts/build.sh -t $(BUILD)/stock -c main -o $(BUILD)/out/stock --partial

kernel-stock-nothp: deps
	@scripts/stock.sh
	@scripts/build.sh -t $(BUILD)/stock -c main -c nothp -o $(BUILD)/out/stock-nothp --partial

# the guest image, and the same with the peer suites (bash, stress-ng, the
# mm selftests built statically) for the peers scenario
initramfs: tree
	@scripts/initramfs.sh $(INITRD)
	@scripts/peers.sh $(INITRD) $(PEERS_INITRD)

unit:
	@$(PY) -m unittest discover -s tests -t . -q

list:
	@$(HARNESS) list

demo: kernel initramfs
	@$(HARNESS) demo --kernel $(KERNEL) --initrd $(INITRD)

# CI runs this one (.ci/run): everything but the KASAN pass and the stock
# kernels, which make test-full adds
test: kernel kernel-debug kernel-nothp initramfs
	@$(HARNESS) test --kernel $(KERNEL) --debug-kernel $(DEBUG_KERNEL) --nothp-kernel $(NOTHP_KERNEL) \
		--no-kasan-pass --initrd $(INITRD) $(SCENARIOS)

# the same, and pagecache-add and vmem-kernel also boot the untouched base
# (same configs) and check that the series does no worse
test-full: cross kernel kernel-debug kernel-nothp kernel-kasan kernel-stock kernel-stock-nothp initramfs
	@$(HARNESS) test --kernel $(KERNEL) --debug-kernel $(DEBUG_KERNEL) --nothp-kernel $(NOTHP_KERNEL) \
		--kasan-kernel $(KASAN_KERNEL) \
		--stock-kernel $(STOCK_KERNEL) --stock-nothp-kernel $(STOCK_NOTHP_KERNEL) \
		--initrd $(INITRD) $(SCENARIOS)

SOAK_CYCLES ?= 1000
soak: kernel-debug initramfs
	@$(HARNESS) test --no-unit --no-debug-pass --kernel $(DEBUG_KERNEL) --debug-kernel $(DEBUG_KERNEL) \
		--initrd $(INITRD) --soak-cycles $(SOAK_CYCLES) soak

# two runs, one table each: the main config, then the one without THP
bench: bench-main bench-nothp

bench-main: kernel kernel-stock initramfs
	@$(HARNESS) bench --kernel $(KERNEL) --stock-kernel $(STOCK_KERNEL) --initrd $(INITRD) $(BENCH_ARGS)

bench-nothp: kernel-nothp kernel-stock-nothp initramfs
	@$(HARNESS) bench --set nothp --kernel $(NOTHP_KERNEL) --stock-kernel $(STOCK_NOTHP_KERNEL) \
		--initrd $(INITRD) $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)/out $(BUILD)/runs $(BUILD)/guest
