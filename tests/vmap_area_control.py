"""The soak's plateau without any hotplug: the control experiment.

Not a unit test: it boots the debug kernel as the soak does (3 GiB), adds
no memory, and only forks: `cat /dev/null` 1500 times per step, 8 steps.
After each step it prints the vmap_area cache's size from /proc/slabinfo.
Every fork allocates a kernel stack with vmalloc (VMAP_STACK); a freed
stack's vmap_area waits for the lazy purge, which vmalloc runs once enough
pages wait.  The cache therefore grows and then stops, as in the soak.
Measured on 2026-12-04: it grew by 453 KiB (1904 to 8344 objects) and
stayed there after 6000 forks.  A 500-cycle soak grew it by 460 KiB and
levelled off at the same point.  Run from the project root:

    python3 tests/vmap_area_control.py build/out/debug/arch/x86/boot/bzImage build/guest/initrd.cpio
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.vm import VM  # noqa: E402

FORKS = 1500
STEPS = 8


def vmap_area(vm):
    """(objects, KiB) of the vmap_area cache."""
    name, _active, objs, size = vm.run("grep '^vmap_area ' /proc/slabinfo").split()[:4]
    return int(objs), int(objs) * int(size) // 1024


def main(kernel, initrd):
    vm = VM("vmap-area-control", kernel, initrd,
            os.path.join("build", "runs", "vmap-area-control"),
            append="memory_hotplug.memmap_on_memory=1 memhp_default_state=offline",
            mem_mib=3072)
    with vm:
        objs0, kib0 = vmap_area(vm)
        print(f"0 forks: {objs0} objects, {kib0} KiB", flush=True)
        for step in range(1, STEPS + 1):
            vm.run(f"i=0; while [ $i -lt {FORKS} ]; do cat /dev/null; i=$((i+1)); done",
                   timeout=900)
            objs, kib = vmap_area(vm)
            print(f"{step * FORKS} forks: {objs} objects, {kib} KiB ({kib - kib0:+d} KiB)",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: vmap_area_control.py KERNEL INITRD")
    main(sys.argv[1], sys.argv[2])
