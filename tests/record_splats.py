"""Record the console lines of real kernel reports for tests/samples/splats.log.

Not a unit test: it boots the debug kernel (configs/debug.config has LKDTM)
and provokes an oops, a hung task, a soft lockup, a hard lockup and the RCU
stall the soft lockup causes, through /sys/kernel/debug/provoke-crash/DIRECT,
then prints "KIND<TAB>line" for the first line of each report the console
check must catch.  Run from the project root:

    python3 tests/record_splats.py build/out/debug/arch/x86/boot/bzImage build/guest/initrd.cpio
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.parsers import console_problems  # noqa: E402
from harness.vm import VM  # noqa: E402

DIRECT = "/sys/kernel/debug/provoke-crash/DIRECT"
# short thresholds, so that every detector fires within seconds
APPEND = "watchdog_thresh=2 rcupdate.rcu_cpu_stall_timeout=3 panic_on_warn=0"
STEPS = (
    ("echo 2 > /proc/sys/kernel/hung_task_timeout_secs; "
     "echo 1 > /proc/sys/kernel/hung_task_check_interval_secs 2>/dev/null; true"),
    # an oops kills the writer only
    f"sh -c 'echo EXCEPTION > {DIRECT}'; true",
    f"(echo HUNG_TASK > {DIRECT} &) ; sleep 8",
    # CPU 1 spins with preemption off, CPU 2 with interrupts off
    f"(taskset -c 1 sh -c 'echo SOFTLOCKUP > {DIRECT}' &) ; sleep 12",
    f"(taskset -c 2 sh -c 'echo HARDLOCKUP > {DIRECT}' &) ; sleep 12",
)


def main(kernel, initrd):
    vm = VM("record-splats", kernel, initrd, os.path.join("build", "runs", "record-splats"),
            append=APPEND, smp=4, slots=0, mem_mib=512)
    with vm:
        for step in STEPS:
            vm.run(step, timeout=120, check=False)
        time.sleep(5)
        console = vm.console()
    seen = set()
    for raw in console.splitlines():
        found = console_problems(raw)
        if found and found[0][0] not in seen:
            seen.add(found[0][0])
            print(f"{found[0][0]}\t{raw.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
