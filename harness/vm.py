"""Run a guest under QEMU: console to a file, an agent on the second serial
port for commands, QMP for hot-plug.  Every wait has a hard timeout and the
QEMU process never outlives the VM object."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from .parsers import console_problems
from .paths import shell_line
from .qmp import QMPClient
from .wait import wait_until

# What QEMU is told per target, as data.
# x86_64, q35: with 2.75 GiB of RAM or more, 2 GiB of it stays below 4 GiB
# and the rest goes above; the first DIMM slot starts at the next GiB above
# that (QEMU 7.2, pc_memory_init).  The agent is on the second serial port.
# arm64, virt: RAM starts at 1 GiB and the DIMM slots at the next GiB above
# its end (QEMU 7.2, virt_set_memmap).  DIMM hotplug there is ACPI's (the
# Generic Event Device), so the guest boots through UEFI (Debian's
# qemu-efi-aarch64, -kernel through fw_cfg) and is told to use ACPI rather
# than the device tree QEMU also gives it.  virt has one UART: the agent is
# on a virtio console (/dev/hvc0).
TARGETS = {
    "x86_64": {"qemu": "qemu-system-x86_64", "machine": "q35", "cpu": "max",
               "console": "ttyS0", "image": "arch/x86/boot/bzImage",
               "agent": "/dev/ttyS1", "append": "",
               "package": "qemu-system-x86",
               "lowmem_split_mib": 2816, "lowmem_mib": 2048},
    "arm64": {"qemu": "qemu-system-aarch64", "machine": "virt", "cpu": "max",
              "console": "ttyAMA0", "image": "arch/arm64/boot/Image",
              "agent": "/dev/hvc0", "append": "acpi=force",
              "package": "qemu-system-arm qemu-efi-aarch64",
              "firmware": "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
              "ram_base_mib": 1024},
}
TARGET = TARGETS["x86_64"]
QEMU = TARGET["qemu"]
BASE_APPEND = f"console={TARGET['console']} panic=-1 printk.time=1 loglevel=7"
KMEMLEAK = "/sys/kernel/debug/kmemleak"


def base_append(target):
    """The kernel command line every guest of `target` gets."""
    t = TARGETS[target]
    extra = f" agent={t['agent']} {t['append']}" if target != "x86_64" else ""
    return f"console={t['console']} panic=-1 printk.time=1 loglevel=7{extra}"


def dimm_base(mem_mib, target=TARGET):
    """Guest-physical address of the first DIMM of a guest with `mem_mib` of
    RAM: the layout rules above."""
    gib = 1 << 30
    if "ram_base_mib" in target:
        return -(-((target["ram_base_mib"] + mem_mib) << 20) // gib) * gib
    low = target["lowmem_mib"] if mem_mib >= target["lowmem_split_mib"] else mem_mib
    above = max(0, mem_mib - low)
    return -(-((4 << 30) + (above << 20)) // gib) * gib


class VMError(Exception):
    """The guest did not boot, died or stopped answering."""


class VM:
    def __init__(self, name, kernel, initrd, rundir, append="", mem_mib=256,
                 slots=8, maxmem_gib=300, smp=2, virtio_mem=(), numa_nodes=1, dimms=(),
                 boot_timeout=180, accel="tcg", disks=(), kmemleak=False, exact_free=True,
                 target="x86_64", page_size=4096):
        self.name = name
        # the architecture QEMU emulates (TARGETS) and the kernel's page size
        self.target = target
        self.page_size = page_size
        self.kernel = kernel
        self.initrd = initrd
        self.rundir = rundir
        self.append = append
        self.mem_mib = mem_mib
        self.slots = slots
        self.maxmem_gib = maxmem_gib
        self.smp = smp
        self.virtio_mem = list(virtio_mem)
        self.dimms = list(dimms)  # cold-plugged: [{"id":, "size": bytes}]
        self.disks = list(disks)  # raw images, read-only virtio-blk: /dev/vda, ...
        self.numa_nodes = numa_nodes
        # the kernel has kmemleak: what it reports after boot is cleared, so
        # that leak_scan() reports what the scenario leaked
        self.kmemleak = kmemleak
        # whether free memory can be compared before and after a step (not
        # under KASAN: see scenarios/base.py, QUARANTINE)
        self.exact_free = exact_free
        self.boot_timeout = boot_timeout
        self.accel = accel
        self.proc = None
        self.qmp = None
        self.agent = None
        self.agent_buf = ""
        self.seq = 0
        self.step_start = 0
        self.console_path = os.path.join(rundir, "console.log")

    # ---- life cycle -------------------------------------------------
    def command_line(self):
        t = TARGETS[self.target]
        mem = f"{self.mem_mib}M"
        if self.slots:
            mem += f",slots={self.slots},maxmem={self.maxmem_gib}G"
        args = [t["qemu"], "-accel", self.accel, "-M", t["machine"], "-cpu", t["cpu"],
                "-smp", str(self.smp), "-m", mem,
                "-nodefaults", "-display", "none", "-no-reboot"]
        if "firmware" in t:
            args += ["-bios", t["firmware"]]
        else:
            args += ["-vga", "none"]
        args += ["-kernel", self.kernel, "-initrd", self.initrd,
                 "-append", f"{base_append(self.target)} {self.append}".strip(),
                 "-chardev", f"file,id=con,path={self.console_path}",
                 "-serial", "chardev:con",
                 "-chardev", f"socket,id=agent,path={self.sock('agent')},server=on,wait=off"]
        if t["agent"] == "/dev/hvc0":
            args += ["-device", "virtio-serial-device", "-device", "virtconsole,chardev=agent"]
        else:
            args += ["-serial", "chardev:agent"]
        args += ["-qmp", f"unix:{self.sock('qmp')},server=on,wait=off"]
        if self.numa_nodes > 1:
            args += ["-object", f"memory-backend-ram,id=boot-ram,size={mem.split(',')[0]}"]
            args += ["-numa", "node,nodeid=0,memdev=boot-ram"]
            for n in range(1, self.numa_nodes):
                args += ["-numa", f"node,nodeid={n}"]
        for d in self.dimms:
            args += ["-object", f"memory-backend-ram,id=mem-{d['id']},size={d['size']},reserve=off",
                     "-device", f"pc-dimm,id={d['id']},memdev=mem-{d['id']}"]
        for vm in self.virtio_mem:
            dev = vm["id"]
            args += ["-object", f"memory-backend-ram,id=mem-{dev},size={vm['size']},reserve=off",
                     "-device", f"virtio-mem-pci,id={dev},memdev=mem-{dev},requested-size=0"
                     + (f",node={vm['node']}" if "node" in vm else "")
                     + (f",block-size={vm['block_size']}" if "block_size" in vm else "")]
        for i, image in enumerate(self.disks):
            args += ["-drive", f"file={image},if=none,id=disk{i},format=raw,readonly=on",
                     "-device", f"virtio-blk-pci,drive=disk{i}"]
        return args

    def sock(self, what):
        return os.path.join(self.rundir, f"{what}.sock")

    def start(self):
        t = TARGETS[self.target]
        if shutil.which(t["qemu"]) is None:
            raise VMError(f"{t['qemu']} not found; run 'apt-get install {t['package']}'")
        if "firmware" in t and not os.path.exists(t["firmware"]):
            raise VMError(f"{t['firmware']} not found; run 'apt-get install {t['package']}'")
        for path in (self.kernel, self.initrd):
            if not os.path.exists(path):
                raise VMError(f"{path} missing; run 'make kernel' first")
        os.makedirs(self.rundir, exist_ok=True)
        for what in ("agent", "qmp"):
            if os.path.exists(self.sock(what)):
                os.unlink(self.sock(what))
        with open(os.path.join(self.rundir, "qemu.cmd"), "w") as f:
            f.write(shell_line(self.command_line()) + "\n")
        self.qemu_log = open(os.path.join(self.rundir, "qemu.log"), "w")
        self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                     stdout=self.qemu_log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        try:
            self.qmp = QMPClient(self.sock("qmp"),
                                 log=open(os.path.join(self.rundir, "qmp.log"), "w"))
            self.qmp.connect(deadline)
            self.agent = self._connect_agent(deadline)
            self._wait_agent("@@READY@@", time.monotonic() + self.boot_timeout, "boot")
            if self.kmemleak:
                self.run(f"echo scan > {KMEMLEAK} && echo clear > {KMEMLEAK}", timeout=600)
        except Exception as e:
            why = str(e).splitlines()[0]
            if self.proc.poll() is not None:
                self.qemu_log.flush()
                with open(os.path.join(self.rundir, "qemu.log"), errors="replace") as f:
                    last = (f.read().strip().splitlines() or ["no output"])[-1]
                why = f"QEMU exited with status {self.proc.returncode}: {last}"
            self.kill()
            raise VMError(f"guest did not boot: {why} (console: {self.console_path})") from e
        return self

    def _connect_agent(self, deadline):
        def connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock("agent"))
                return s
            except OSError:
                s.close()
                return None
        return wait_until(connect, deadline - time.monotonic(), poll=0.1,
                          what="agent socket never appeared",
                          alive=lambda: self._check_alive("start"))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, doing):
        if not self.alive():
            tail = self.console_tail()
            raise VMError(f"QEMU exited during {doing} (status "
                          f"{self.proc.returncode if self.proc else '?'}); "
                          f"last console lines:\n{tail}")

    def console(self, since=0):
        """The console log, from byte offset `since` (see begin_step)."""
        try:
            with open(self.console_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def begin_step(self):
        """Mark where the console ends now: what a hot-plug step (an add, a
        remove, a resize) prints is then looked for from here on, so that
        an earlier step's failure message cannot be taken for its own."""
        try:
            self.step_start = os.path.getsize(self.console_path)
        except FileNotFoundError:
            self.step_start = 0
        return self.step_start

    def step_console(self):
        """What the console printed since the last begin_step()."""
        return self.console(self.step_start)

    def console_tail(self, n=15):
        return "\n".join(self.console().splitlines()[-n:])

    def problems(self):
        return console_problems(self.console())

    def leak_scan(self):
        """kmemleak's report of what became unreferenced since boot (two
        scans: an object is reported once a scan found it unreferenced
        and older than kmemleak's minimum age)."""
        self.run(f"echo scan > {KMEMLEAK}; sleep 6; echo scan > {KMEMLEAK}", timeout=900)
        return self.run(f"cat {KMEMLEAK}", timeout=120)

    def stop(self, timeout=20):
        """Power the guest off cleanly; kill QEMU if that does not work."""
        if self.alive():
            try:
                self._send("poweroff -f")
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for c in (self.qmp, self.agent):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass
        self.qmp = self.agent = None
        if getattr(self, "qemu_log", None):
            self.qemu_log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- agent ------------------------------------------------------
    # the line that ends the reply to a request (guest/agent); the output
    # need not end in a newline, so it can share the line with the output
    AGENT_END = re.compile(r"@@(t\d+) (\d+)@@\n")

    def _send(self, script):
        self.seq += 1
        tok = f"t{self.seq}"
        b64 = base64.b64encode(script.encode()).decode()
        self.agent.sendall(f"{tok} {b64}\n".encode())
        return tok

    def _recv_agent(self, deadline, doing):
        """Add what the agent sent next to agent_buf; VMError past the
        deadline or when QEMU or the connection went away."""
        while True:
            self._check_alive(doing)
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError(f"timed out during {doing}; last console lines:\n"
                              f"{self.console_tail()}")
            self.agent.settimeout(min(left, 0.5))
            try:
                chunk = self.agent.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise VMError(f"agent connection closed during {doing}")
            self.agent_buf += chunk.decode(errors="replace").replace("\r", "")
            return

    def _wait_agent(self, marker, deadline, doing):
        """Wait for the line `marker` (the boot's @@READY@@); return what came
        before it.  Its newline goes with it, so that the first reply does
        not start with it."""
        while marker + "\n" not in self.agent_buf:
            self._recv_agent(deadline, doing)
        before, self.agent_buf = self.agent_buf.split(marker + "\n", 1)
        return before

    def _wait_reply(self, tok, deadline, doing):
        """(rc, output) of request `tok`.  Replies come in order, each
        ended by its own end line; a complete reply to an earlier request
        (one that timed out and finished late) is dropped with its output,
        so that it cannot be taken for, or glued onto, this one."""
        while True:
            m = self.AGENT_END.search(self.agent_buf)
            if m is None:
                self._recv_agent(deadline, doing)
                continue
            out, self.agent_buf = self.agent_buf[:m.start()], self.agent_buf[m.end():]
            if m.group(1) == tok:
                return int(m.group(2)), out

    def run(self, script, timeout=120, check=True):
        """Run a shell script in the guest; return its output (rc with check=False)."""
        try:
            tok = self._send(script)
        except OSError as e:
            self._check_alive(f"'{script[:60]}'")
            raise VMError(f"agent connection lost: {e}") from e
        rc, out = self._wait_reply(tok, time.monotonic() + timeout, f"'{script[:60]}'")
        if check and rc != 0:
            raise VMError(f"guest command failed (rc {rc}): {script[:200]}\n{out}")
        return out if check else (rc, out)
