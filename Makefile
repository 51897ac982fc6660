# memmap-on-memory: patch series + harness.  See README.md.
PY := /usr/bin/python3
BUILD := build
KERNEL := $(BUILD)/out/main/arch/x86/boot/bzImage
FAULT_KERNEL := $(BUILD)/out/fault/arch/x86/boot/bzImage
INITRD := $(BUILD)/guest/initrd.cpio
HARNESS := $(PY) -m harness

.PHONY: all deps base tree export check check-series kernel kernel-fault initramfs demo test unit list clean help

all: help
help:
	@echo "make demo          build the kernel, measure a 16 GiB hot-add with =0 and =1, write results/demo/"
	@echo "make test          every test: harness unit tests, KUnit, scenarios (closing line: N passed, N failed)"
	@echo "make tree          build/linux = pinned base + git am of patches/series"
	@echo "make export        write build/linux's commits back to patches/"
	@echo "make check         checkpatch.pl --strict on every patch"
	@echo "make check-series  build after every patch"
	@echo "make kernel        build the main test kernel"
	@echo "make kernel-fault  build the kernel with fault injection (main + configs/fault.config)"
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

check-series: deps
	@scripts/check-series.sh

kernel: tree
	@scripts/build.sh -c main -o $(BUILD)/out/main

kernel-fault: tree
	@scripts/build.sh -c main -c fault -o $(BUILD)/out/fault

initramfs: tree
	@scripts/initramfs.sh $(INITRD)

unit:
	@$(PY) -m unittest discover -s tests -t . -q

list:
	@$(HARNESS) list

demo: kernel initramfs
	@$(HARNESS) demo --kernel $(KERNEL) --initrd $(INITRD)

test: kernel kernel-fault initramfs
	@$(HARNESS) test --kernel $(KERNEL) --fault-kernel $(FAULT_KERNEL) --initrd $(INITRD) $(SCENARIOS)

clean:
	rm -rf $(BUILD)/out $(BUILD)/runs $(BUILD)/guest
