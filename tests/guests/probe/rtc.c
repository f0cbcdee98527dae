/*
 * rtc.c: the MC146818 RTC/CMOS clock (ports 0x70/0x71).
 */
#include "probe.h"

#define RTC_A 0x0a /* bit 7: UIP */
#define RTC_B 0x0b /* bit 2: binary (DM), bit 1: 24h */
#define RTC_CENTURY 0x32

struct rtc_time {
	u32 sec, min, hour, day, mon, year;
	u32 binary, h24;
};

static u8 cmos(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static u32 bcd(u32 v, int binary) { return binary ? v : (v >> 4) * 10 + (v & 0xf); }

/* One reading after UIP clears; 0 on timeout. */
static int rtc_read1(struct rtc_time *t)
{
	u32 t0 = pit_now();
	while (cmos(RTC_A) & 0x80)
		if (pit_now() - t0 > TICKS_MS(10))
			return 0;
	u32 b = cmos(RTC_B), bin = !!(b & 4), hr = cmos(4);
	t->binary = bin;
	t->h24 = !!(b & 2);
	t->sec = bcd(cmos(0), bin);
	t->min = bcd(cmos(2), bin);
	t->day = bcd(cmos(7), bin);
	t->mon = bcd(cmos(8), bin);
	t->year = bcd(cmos(RTC_CENTURY), bin) * 100 + bcd(cmos(9), bin);
	t->hour = bcd(hr & 0x7f, bin);
	if (!t->h24) { /* 12h: 12 AM is 0, bit 7 = PM */
		if (t->hour == 12)
			t->hour = 0;
		if (hr & 0x80)
			t->hour += 12;
	}
	return 1;
}

/* Read until two readings agree (the registers may tick mid-read). */
static int rtc_read(struct rtc_time *t)
{
	struct rtc_time u;
	for (int i = 0; i < 5; i++)
		if (rtc_read1(t) && rtc_read1(&u) && !memcmp(t, &u, sizeof u))
			return 1;
	return 0;
}

static u32 secs(const struct rtc_time *t) { return (t->hour * 60 + t->min) * 60 + t->sec; }

void rtc_report(void)
{
	struct rtc_time a, b;
	if (!rtc_read(&a)) {
		check("rtc", CHECK_FAIL, "unstable or UIP stuck");
		return;
	}
	pr("rtc: %04u-%02u-%02u %02u:%02u:%02u %s %s\n", a.year, a.mon, a.day, a.hour, a.min, a.sec,
	   a.binary ? "binary" : "bcd", a.h24 ? "24h" : "12h");
	if (a.sec > 59 || a.min > 59 || a.hour > 23 || a.day < 1 || a.day > 31 || a.mon < 1 || a.mon > 12)
		check("rtc", CHECK_FAIL, "field out of range");
	else if (a.year < 2000 || a.year > 2099)
		check("rtc", CHECK_FAIL, "year %u", a.year);
	else if (!rtc_read(&b))
		check("rtc", CHECK_FAIL, "second read failed");
	else if ((secs(&b) + 86400 - secs(&a)) % 86400 > 2)
		check("rtc", CHECK_FAIL, "reads %u s apart", (secs(&b) + 86400 - secs(&a)) % 86400);
	else
		check("rtc", CHECK_OK, 0);
}
