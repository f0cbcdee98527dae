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

say "uptime: $(cut -d' ' -f1 /proc/uptime)"
# dhyve.end=reboot on the kernel command line: end with a reboot (the tests
# check both ways out).
if grep -qw 'dhyve.end=reboot' /proc/cmdline; then
  say "reboot"
  reboot -f
fi
say "poweroff"
poweroff -f
