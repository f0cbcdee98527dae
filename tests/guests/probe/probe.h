/*
 * probe.h: shared declarations of the dhyve probe guest.
 *
 * The probe is a freestanding 32-bit multiboot kernel (no paging, flat
 * segments, physical addresses = pointers). It prints `key: value` lines on
 * COM1 and powers off. Every wait is bounded by the PIT (see lib.c).
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/* ---- port I/O, MMIO, CPUID ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* A physical address as a pointer, hidden from the optimizer (gcc 12 warns
 * about constant addresses below 4 KiB, and must not assume anything). */
static inline void *phys(u32 a) { __asm__("" : "+r"(a)); return (void *)a; }
static inline u8 rd8(u32 a) { return *(volatile u8 *)phys(a); }
static inline u16 rd16(u32 a) { return *(volatile u16 *)phys(a); }
static inline u32 rd32(u32 a) { return *(volatile u32 *)phys(a); }
static inline u64 rd64(u32 a) { return rd32(a) | (u64)rd32(a + 4) << 32; }
static inline void wr32(u32 a, u32 v) { *(volatile u32 *)phys(a) = v; }

static inline void cpuid(u32 leaf, u32 sub, u32 r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }

/* ---- lib.c: strings, serial, formatting, CRC, PIT time ---- */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

void serial_init(void);
void serial_drain(void);
/* printf subset: %c %s %q (quoted, escaped) %d %u %x, flag 0, width,
 * precision .N/.* for %s/%q, ll for 64-bit %x. */
void pr(const char *fmt, ...);
void vpr(const char *fmt, va_list ap);
u32 crc32(const u8 *p, u32 n);
u32 sum8(u32 addr, u32 len); /* byte sum, for ACPI/MP checksums */
void sort_u32(u32 *v, u32 n);

#define PIT_HZ 1193182u
#define TICKS_MS(ms) ((ms) * 1193u)
/* How long a check waits for an interrupt, and for the APs to arrive. Only
 * a failing check waits this long; they are generous because a loaded host
 * (hundreds of vCPU threads on two cores) can keep a vCPU off a CPU. */
#define IRQ_WAIT_MS 2000u
#define AP_WAIT_MS 5000u
#define TICKS_US(us) ((us) * 1193u / 1000u)
void pit_init(void);
u32 pit_now(void); /* PIT ticks since pit_init; call at least every 50 ms */
void delay_ticks(u32 ticks);

/* check results: one `check.<name>: ok|FAIL <reason>|skip <reason>` line */
enum { CHECK_OK, CHECK_FAIL, CHECK_SKIP };
void check(const char *name, int status, const char *fmt, ...);
void check_summary(void);

/* ---- main.c: boot information ---- */
#define MMAP_MAX 64
struct mem_range {
	u64 base, len;
	u32 type;
};
extern struct mem_range mmap_ranges[MMAP_MAX];
extern u32 mmap_count; /* 0: the loader gave no memory map */

/* ---- cpu (smp.c) ---- */
#define CPU_MAX 256
struct cpu_rec {
	u32 apic;   /* CPUID.1:EBX[31:24], read by that CPU */
	u32 x2apic; /* CPUID.0xB:EDX, read by that CPU */
	u32 bsp;
};
extern struct cpu_rec cpus[CPU_MAX]; /* sorted by APIC ID after smp_start */
extern u32 cpu_count;
extern u32 bsp_apic;
extern int has_leaf_b; /* CPUID leaf 0xB present */
extern int topo_valid;
extern u32 smt_shift, core_shift, threads_per_core, logical_per_package;
extern u32 lapic_base;
void cpu_report(void);
void smp_start(u32 expected); /* expected 0: unknown */
void smp_report(u32 expected, const char *source);
int cpus_match(const u32 *ids, u32 n, u32 max_id); /* ids sorted; vs started CPUs with IDs <= max_id */
void lapic_eoi(void);

/* ---- idt.c ---- */
void idt_init(void);
void idt_load(void); /* on APs too */
#define PIC_VECTOR 0x50 /* the 8259 pair's IRQ 0 (master 0x50-0x57, slave 0x58-0x5F) */
extern volatile u32 irq_seen[32]; /* vectors 0x40-0x5F */
int wait_irq(u32 vec, u32 timeout_ticks);

/* ---- acpi.c ---- */
extern u32 acpi_rsdp, acpi_madt, acpi_fadt, acpi_dsdt, acpi_hpet, acpi_mcfg;
extern u32 madt_enabled_ids[CPU_MAX], madt_enabled;
extern u32 ioapic_addr, ioapic_count;
void ioapic_write(u32 reg, u32 v); /* through IOREGSEL (0x00) and IOWIN (0x10) */
u32 ioapic_read(u32 reg);
void acpi_find(void);
void acpi_report(void);
void madt_report(void);
u32 bios_find(u32 sig, u32 sig2, u32 cklen, int mp);
void poweroff(void) __attribute__((noreturn));
void halt_forever(void) __attribute__((noreturn)); /* entry.S */

/* ---- mp.c ---- */
extern u32 mp_fp;
int mp_pci_intin(u32 dev, u32 pin, u32 *flags); /* IOAPIC pin of 00:dev INT(A+pin); -1: none */
extern u32 mp_enabled;
void mp_find(void);
void mp_report(void);

/* ---- pci.c ---- */
void pci_report(void);
void msi_check(void);
void intx_check(void);
void intx_pic_check(void);
void intx_ack(void); /* from the vector 0x42 handler: lowers the test device's INTx */

/* ---- hpet.c, rtc.c ---- */
void hpet_report(void);
void rtc_report(void);

#endif
