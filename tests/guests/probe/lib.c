/*
 * lib.c: memory/string helpers, COM1 output, a printf subset, CRC-32, the
 * PIT clock and check bookkeeping.
 */
#include "probe.h"

/* ---- memory and strings (no libc; rep movs/stos avoid gcc turning a loop
 * back into a call to memcpy/memset) ---- */
void *memcpy(void *d, const void *s, size_t n)
{
	void *r = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return r;
}

void *memset(void *d, int c, size_t n)
{
	void *r = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return r;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

u32 sum8(u32 addr, u32 len)
{
	const volatile u8 *p = phys(addr);
	u32 s = 0;
	while (len--)
		s += *p++;
	return s & 0xff;
}

void sort_u32(u32 *v, u32 n)
{
	for (u32 i = 1; i < n; i++) {
		u32 x = v[i], j = i;
		for (; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* ---- PIT channel 2 as a free-running clock ----
 * Channel 2 (gate: port 0x61 bit 0, speaker off: bit 1 = 0) runs in mode 2
 * with reload 0 (65536 ticks = 54.9 ms per turn); pit_now() latches the count
 * and accumulates the ticks elapsed since its last call. If the count never
 * moves (a broken PIT), each 1000 identical reads count as a full turn so
 * that every wait still ends. */
static u32 pit_total;
static u16 pit_last;
static u32 pit_same;

static u16 pit_read(void)
{
	outb(0x43, 0x80); /* counter latch, channel 2 */
	u8 lo = inb(0x42);
	u8 hi = inb(0x42);
	return lo | hi << 8;
}

void pit_init(void)
{
	outb(0x61, (inb(0x61) & ~0x02) | 0x01);
	outb(0x43, 0xb4); /* channel 2, lobyte/hibyte, mode 2, binary */
	outb(0x42, 0);
	outb(0x42, 0);
	pit_last = pit_read();
}

u32 pit_now(void)
{
	u16 c = pit_read();
	if (c == pit_last) {
		if (++pit_same >= 1000) {
			pit_same = 0;
			pit_total += 65536;
		}
	} else {
		pit_same = 0;
	}
	pit_total += (u16)(pit_last - c);
	pit_last = c;
	return pit_total;
}

void delay_ticks(u32 ticks)
{
	u32 t0 = pit_now();
	while (pit_now() - t0 < ticks)
		;
}

/* ---- COM1: 115200 8N1, FIFOs on, polled ---- */
#define COM1 0x3f8
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
static int serial_dead; /* set after a timeout: stop waiting */

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts */
	outb(COM1 + 3, 0x80); /* LCR: DLAB */
	outb(COM1 + 0, 0x01); /* divisor 1: 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* LCR: 8N1 */
	outb(COM1 + 2, 0x07); /* FCR: enable, clear RX/TX FIFOs */
	outb(COM1 + 4, 0x03); /* MCR: DTR, RTS */
}

static void serial_wait(u8 bit)
{
	if ((inb(COM1 + 5) & bit) || serial_dead)
		return;
	u32 t0 = pit_now();
	while (!(inb(COM1 + 5) & bit))
		if (pit_now() - t0 > TICKS_MS(20)) {
			serial_dead = 1;
			return;
		}
}

static void putch(char c)
{
	serial_wait(LSR_THRE);
	outb(COM1, c);
}

void serial_drain(void) { serial_wait(LSR_TEMT); }

/* ---- formatting ---- */
static void put_num(u64 v, int base, int width, char pad)
{
	char buf[24];
	int n = 0;
	if (base == 16) {
		do {
			buf[n++] = "0123456789abcdef"[v & 15];
			v >>= 4;
		} while (v);
	} else {
		u32 w = (u32)v;
		do {
			buf[n++] = '0' + w % 10;
			w /= 10;
		} while (w);
	}
	while (width-- > n)
		putch(pad);
	while (n)
		putch(buf[--n]);
}

void vpr(const char *f, va_list ap)
{
	for (; *f; f++) {
		if (*f != '%') {
			putch(*f);
			continue;
		}
		f++;
		char pad = ' ';
		int width = 0, prec = -1, ll = 0;
		if (*f == '0') {
			pad = '0';
			f++;
		}
		while (*f >= '0' && *f <= '9')
			width = width * 10 + *f++ - '0';
		if (*f == '.') {
			f++;
			if (*f == '*') {
				prec = va_arg(ap, int);
				f++;
			} else {
				prec = 0;
				while (*f >= '0' && *f <= '9')
					prec = prec * 10 + *f++ - '0';
			}
		}
		while (*f == 'l') {
			ll++;
			f++;
		}
		switch (*f) {
		case 'c':
			putch((char)va_arg(ap, int));
			break;
		case 'd': {
			int v = va_arg(ap, int);
			if (v < 0) {
				putch('-');
				v = -v;
			}
			put_num((u32)v, 10, width, pad);
			break;
		}
		case 'u':
			put_num(va_arg(ap, u32), 10, width, pad);
			break;
		case 'x':
			put_num(ll >= 2 ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, pad);
			break;
		case 's':
		case 'q': {
			const char *s = va_arg(ap, const char *);
			int q = *f == 'q';
			if (q)
				putch('"');
			for (; *s && prec != 0; s++, prec--) {
				u8 c = *s;
				if (q && (c == '"' || c == '\\')) {
					putch('\\');
					putch(c);
				} else if (q && (c < 0x20 || c >= 0x7f)) {
					putch('\\');
					putch('x');
					put_num(c, 16, 2, '0');
				} else {
					putch(c);
				}
			}
			if (q)
				putch('"');
			break;
		}
		default:
			putch(*f);
		}
	}
}

void pr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vpr(fmt, ap);
	va_end(ap);
}

/* ---- CRC-32/IEEE (reflected, poly 0xEDB88320), slicing-by-4: tables built
 * on first use; about half the instructions of the bytewise loop, which
 * matters where ring 0 runs in KVM's emulator (~2 s per MiB bytewise) */
static u32 crc_table[4][256];
typedef u32 __attribute__((may_alias, aligned(1))) u32_any;

u32 crc32(const u8 *p, u32 n)
{
	if (!crc_table[0][1]) {
		for (u32 i = 0; i < 256; i++) {
			u32 c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
			crc_table[0][i] = c;
		}
		for (u32 i = 0; i < 256; i++)
			for (int t = 1; t < 4; t++)
				crc_table[t][i] = crc_table[t - 1][i] >> 8 ^ crc_table[0][crc_table[t - 1][i] & 0xff];
	}
	u32 c = ~0u;
	for (; n >= 4; n -= 4, p += 4) {
		c ^= *(const u32_any *)p;
		c = crc_table[3][c & 0xff] ^ crc_table[2][(c >> 8) & 0xff] ^ crc_table[1][(c >> 16) & 0xff] ^
		    crc_table[0][c >> 24];
	}
	while (n--)
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ---- checks ---- */
static u32 n_checks, n_ok, n_failed, n_skipped;

void check(const char *name, int status, const char *fmt, ...)
{
	static const char *const word[] = {"ok", "FAIL", "skip"};
	pr("check.%s: %s", name, word[status]);
	n_checks++;
	if (status == CHECK_OK)
		n_ok++;
	else if (status == CHECK_FAIL)
		n_failed++;
	else
		n_skipped++;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		pr(" ");
		vpr(fmt, ap);
		va_end(ap);
	}
	pr("\n");
}

void check_summary(void)
{
	pr("probe: checks=%u ok=%u failed=%u skipped=%u\n", n_checks, n_ok, n_failed, n_skipped);
}
