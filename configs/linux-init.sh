#!/bin/sh
# /init of the initramfs configs/linux.toml boots (built by `deno task
# fetch-linux` from busybox-static; see tools/fetch_linux.ts).
#
# It checks the machine from inside Linux and prints one line per fact or
# check, each "dhyve-init: KEY: VALUE" (checks: "dhyve-init: check.NAME: ok|fail
# DETAIL"), which tests/linux_test.ts parses; then it powers off (dhyve exits 1),
# or reboots when the kernel command line has dhyve.end=reboot (dhyve exits 0).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "dhyve-init: $*"; }
check() { # check NAME ok|fail DETAIL...
  name=$1
  shift
  say "check.$name: $*"
}

say "start"
mount -t proc proc /proc
# Kernel messages would interleave with these lines on the console; they
# stay readable with dmesg.
dmesg -n 1
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say "uname: $(uname -r)"
say "nproc: $(nproc)"
say "uptime: $(cut -d' ' -f1 /proc/uptime)"

# Topology, as /proc/cpuinfo lists it: processors, sockets, cores per socket,
# threads per core (siblings / cpu cores).
cpus=$(grep -c '^processor' /proc/cpuinfo)
sockets=$(grep '^physical id' /proc/cpuinfo | sort -u | wc -l)
cores=$(grep -m1 '^cpu cores' /proc/cpuinfo | sed 's/.*: //')
siblings=$(grep -m1 '^siblings' /proc/cpuinfo | sed 's/.*: //')
threads=1
[ -n "$cores" ] && [ "$cores" -gt 0 ] && threads=$((siblings / cores))
apics=$(grep '^apicid' /proc/cpuinfo | sed 's/.*: //' | tr '\n' ',' | sed 's/,$//')
say "topology: cpus=$cpus sockets=$sockets cores=${cores:-?} threads=$threads apicids=$apics"

# dmesg: ACPI errors and warnings (ACPICA's "ACPI Error:", "ACPI BIOS Error
# (bug):", "ACPI Exception:", "ACPI Warning:"), and complaints about PCI
# interrupt routing (drivers/acpi/pci_irq.c, pci_link.c, arch/x86/pci/irq.c:
# _PRT evaluation, link devices, no GSI for a pin, routing conflicts); not
# the normal "PCI: Using ACPI for IRQ routing".
acpi_re='ACPI (BIOS )?(Error|Exception|Warning)|\[Firmware Bug\].*ACPI'
irq_re='_PRT.*(error|fail|not found)|can.t derive routing|no GSI|IRQ routing conflict|Unable to derive IRQ|PCI INT [A-D].*(not|fail|can.t)|Interrupt link .*(fail|can.t|invalid)'
dmesg_check() { # dmesg_check NAME REGEX
  n=$(dmesg | grep -ciE "$2")
  if [ "$n" -eq 0 ]; then check "$1" ok; else
    check "$1" fail "$n lines: $(dmesg | grep -iE "$2" | head -3 | sed 's/^\[[^]]*\] //' | tr '\n' '|')"
  fi
}
dmesg_check dmesg.acpi "$acpi_re"
dmesg_check dmesg.irq_routing "$irq_re"

# PCI functions through sysfs.
for d in /sys/bus/pci/devices/*; do
  [ -e "$d/vendor" ] || continue
  say "pci: $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") class=$(cat "$d/class")"
done
if grep -qx 0x6468 /sys/bus/pci/devices/*/vendor 2>/dev/null; then check pci.testdev ok; else
  check pci.testdev fail "no 6468:0001 in /sys/bus/pci/devices"
fi

# Drivers bound: the HPET (its clockevent/clocksource or /dev/hpet) and an RTC class device.
if grep -q hpet /sys/devices/system/clocksource/clocksource0/available_clocksource 2>/dev/null ||
  [ -e /dev/hpet ] || dmesg | grep -q 'hpet0: at MMIO'; then
  check hpet ok "$(dmesg | grep -m1 'hpet0:' | sed 's/^\[[^]]*\] //')"
else check hpet fail "no hpet clocksource, /dev/hpet or hpet0 in dmesg"; fi
if [ -e /sys/class/rtc/rtc0 ]; then
  check rtc ok "$(cat /sys/class/rtc/rtc0/name) $(cat /sys/class/rtc/rtc0/date) $(cat /sys/class/rtc/rtc0/time)"
else check rtc fail "no /sys/class/rtc/rtc0"; fi

# The ACPI PM timer: offered as a clocksource (acpi_pm), and which one is current.
cs=/sys/devices/system/clocksource/clocksource0
say "clocksource: current=$(cat $cs/current_clocksource) available=$(cat $cs/available_clocksource)"
if grep -q acpi_pm $cs/available_clocksource || dmesg | grep -q 'clocksource: acpi_pm'; then
  check pm_timer ok "$(dmesg | grep -m1 'acpi_pm' | sed 's/^\[[^]]*\] //')"
else check pm_timer fail "acpi_pm is not a clocksource"; fi

# User space ran cleanly: no process of this script died of a signal the
# kernel logs (segfaults, traps: "segfault at", "trap ... ip").
dmesg_check userspace 'segfault at|traps: |general protection fault'

# dhyve.virtio on the kernel command line: the virtio devices of
# tests/linux_virtio_test.ts (a writable ext4 disk, a read-only disk, a NIC on
# a tap with the host at 10.0.2.2, a console port on a unix socket, an
# entropy source) are used from inside Linux.
load_virtio() { # the virtio modules, in dependency order (tools/fetch_linux.ts LINUX_MODULES)
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
    virtio_blk virtio-rng virtio_console failover net_failover virtio_net; do
    insmod /lib/modules/$m.ko || check "module.$m" fail "insmod $m"
  done
  sleep 1
}
# dhyve.bench=MIB (bench/virtio_bench.ts): sequential O_DIRECT writes, then
# reads, of MIB MiB in 1 MiB blocks on each virtio disk. Busybox's dd does not
# time itself: each run is timed with /proc/uptime (10 ms steps), in guest
# seconds, and reported as "bytes=N seconds=S".
bench=$(sed -n 's/.*dhyve\.bench=\([0-9]*\).*/\1/p' /proc/cmdline)
timed_dd() { # timed_dd DD-ARGS...: "bytes=N seconds=S", or the error
  t0=$(cut -d' ' -f1 /proc/uptime)
  if out=$(dd "$@" bs=1M count=$bench 2>&1); then
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "bytes=$((bench * 1048576)) seconds=$(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}')"
  else echo "failed: $(echo "$out" | tr '\n' '|')"; fi
}
if [ -n "$bench" ]; then
  load_virtio
  for d in /sys/block/vd*; do
    d=$(basename "$d")
    say "bench.$d.write: $(timed_dd if=/dev/zero of=/dev/$d oflag=direct)"
    say "bench.$d.read: $(timed_dd if=/dev/$d of=/dev/null iflag=direct)"
  done
fi
if grep -qw 'dhyve.virtio' /proc/cmdline; then
  load_virtio
  for d in /sys/bus/virtio/devices/*; do
    [ -e "$d/device" ] && say "virtio: $(basename "$d") device=$(cat "$d/device") driver=$(basename "$(readlink "$d/driver")")"
  done
  # The writable disk: ext4 made by the test; a file written here must be in the image on the host.
  mkdir -p /mnt
  if mount -t ext4 /dev/vda /mnt; then
    echo "written by the guest through virtio-blk" > /mnt/f
    sync
    say "blk.read: $(cat /mnt/hello 2>/dev/null)"
    umount /mnt && check virtio.blk ok "$(cat /sys/block/vda/size) sectors, serial $(cat /sys/block/vda/serial 2>/dev/null)"
  else check virtio.blk fail "cannot mount /dev/vda"; fi
  # The read-only disk: the kernel sees it read-only and refuses a write
  # (blkdev_write_iter: EPERM on a read-only block device).
  ro=$(cat /sys/block/vdb/ro 2>/dev/null)
  out=$(dd if=/dev/zero of=/dev/vdb bs=512 count=1 oflag=direct 2>&1)
  if [ "$ro" = 1 ] && echo "$out" | grep -qiE 'read-only|not permitted'; then
    check virtio.blk_readonly ok "ro=1, write refused: $(echo "$out" | head -1)"
  else check virtio.blk_readonly fail "ro=$ro, dd said: $(echo "$out" | tr '\n' '|')"; fi
  # Entropy: the virtio RNG is the hwrng and gives bytes.
  rng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
  n=$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | wc -c)
  case "$rng" in
  virtio_rng*) [ "$n" = 32 ] && check virtio.rng ok "$rng gave $n bytes" || check virtio.rng fail "$rng gave $n bytes" ;;
  *) check virtio.rng fail "hwrng is '$rng'" ;;
  esac
  # The network: a TCP echo through the tap to the test's listener on the host.
  ip link set lo up
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
  say "net.mac: $(cat /sys/class/net/eth0/address 2>/dev/null)"
  reply=$(echo "ping through virtio-net" | nc -w 10 10.0.2.2 7777)
  if [ "$reply" = "echo: ping through virtio-net" ]; then check virtio.net ok "$reply"
  else check virtio.net fail "reply '$reply'"; fi
  # The console port: a line each way with the test on the socket. hvc0 stays
  # open throughout (fd 3): a line that arrives while no process has the tty
  # open would be dropped with the tty when its last user closes it.
  # (A failed redirection of `exec` would end this shell, and init with it:
  # the device is opened once in a subshell first.)
  if [ -c /dev/hvc0 ] && (: <>/dev/hvc0) 2>/dev/null; then
    exec 3<>/dev/hvc0
    stty raw -echo <&3
    echo "guest to host through virtio-console" >&3
    line=$(timeout 60 head -n 1 <&3)
    exec 3>&-
    if [ "$line" = "host to guest through virtio-console" ]; then check virtio.console ok "$line"
    else check virtio.console fail "read '$line'"; fi
  else check virtio.console fail "cannot open /dev/hvc0"; fi
fi

say "uptime: $(cut -d' ' -f1 /proc/uptime)"
# dhyve.end=reboot on the kernel command line: end with a reboot (the tests
# check both ways out).
if grep -qw 'dhyve.end=reboot' /proc/cmdline; then
  say "reboot"
  reboot -f
fi
say "poweroff"
poweroff -f
