/*
 * dhyve's x86 oracle: runs instructions natively at CPL3 and reports what
 * the real CPU did, so that the emulator in cpu/x86/exec.ts can be compared
 * with it (cpu/x86/oracle_test.ts builds this with gcc at test time).
 *
 * Protocol (all little-endian, records back to back):
 *   stdin  case:    code[16], u32 len, u32 code_offset, regs
 *   stdout result:  i32 vector (-1: none), i32 signo, u64 error_code,
 *                   u64 fault_addr, u32 stray, u32 pad, regs
 * where regs is struct oracle_regs below (gpr[16], rflags, rip, xmm[16][16],
 * the upper halves of ymm0-15, mxcsr, x87 FCW/FSW, and with AVX-512F/VL bits
 * 511:256 of zmm0-15, zmm16-31 and k0-k7 (bits 15:0), mem[ORACLE_BUF_LEN]).
 * For a completed instruction `regs` holds the state after it (rip = the
 * address after it, or LAYOUT.taken bytes further for a taken branch); after
 * a fault it holds the state at the fault from the signal frame (rip = the
 * faulting instruction, or past it for a trap such as int3), and
 * vector/error_code are the hardware's trap number and error code
 * (uc_mcontext REG_TRAPNO/REG_ERR), fault_addr the signal's si_addr (CR2).
 *
 * The instruction runs at ORACLE_CODE + code_offset and is followed by
 * `jmp [rip+disp]` back to stub.S (another one 0x40 bytes further catches a
 * taken branch). Its memory operands address the buffer at ORACLE_BUF,
 * ORACLE_BUF_LEN bytes across the boundary of the two data pages (so that
 * accesses cross pages; the emulator maps the second one to a physical page
 * elsewhere); the page after them (ORACLE_GUARD) is mapped PROT_NONE so that
 * an access into it faults as in the emulator's page tables, and the code
 * page is read-only while a case runs. The rest of the data pages holds a
 * pattern; `stray` counts its bytes changed by the instruction.
 *
 * ORACLE_TRACE=1 in the environment prints each case's bytes to stderr
 * before running it (to find a case that kills the harness).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define PAGE 4096
#define ORACLE_DATA 0x10000UL /* two pages */
#define ORACLE_GUARD 0x12000UL
#define ORACLE_CODE 0x20000UL
#define ORACLE_BUF_LEN 256
#define ORACLE_BUF (ORACLE_DATA + PAGE - ORACLE_BUF_LEN / 2)
#define PATTERN 0xa5
/* The register part of struct oracle_regs (what stub.S loads and stores). */
#define REGS_STATE 2272

struct oracle_regs {
  uint64_t gpr[16];
  uint64_t rflags;
  uint64_t rip;
  uint8_t xmm[16][16];
  uint8_t ymmh[16][16]; /* bits 255:128 of ymm0-15 (left as zeros without AVX) */
  uint32_t mxcsr;
  uint16_t fcw; /* x87 control word (loaded and stored) */
  uint16_t fsw; /* x87 status word (stored only) */
  uint64_t pad;
  uint8_t zmmh[16][32];  /* bits 511:256 of zmm0-15 (left as zeros without AVX-512) */
  uint8_t zmm_hi16[16][64]; /* zmm16-31 */
  uint64_t k[8];         /* k0-k7: bits 15:0 loaded (kmovw), zero-extended when stored */
  uint8_t mem[ORACLE_BUF_LEN];
};

struct oracle_case {
  uint8_t code[16];
  uint32_t len;
  uint32_t code_offset;
  struct oracle_regs regs;
};

struct oracle_result {
  int32_t vector;
  int32_t signo;
  uint64_t error_code;
  uint64_t fault_addr;
  uint32_t stray;
  uint32_t pad;
  struct oracle_regs regs;
};

_Static_assert(sizeof(struct oracle_regs) == REGS_STATE + ORACLE_BUF_LEN, "regs layout");
_Static_assert(sizeof(struct oracle_case) == 24 + sizeof(struct oracle_regs), "case layout");
_Static_assert(sizeof(struct oracle_result) == 32 + sizeof(struct oracle_regs), "result layout");

/* stub.S */
extern uint8_t oracle_in[4096], oracle_out[4096];
extern uint64_t oracle_code, oracle_saved_rsp;
extern uint8_t oracle_avx, oracle_avx512, oracle_taken, oracle_running;
extern void oracle_done_taken(void);
extern void oracle_signal_entry(int, siginfo_t *, void *);
extern int oracle_run(void);
extern void oracle_done(void), oracle_fault_return(void);

static volatile sig_atomic_t faulted;
static struct oracle_result fault;

/* The register numbers of struct oracle_regs.gpr, in the signal frame. */
static const int greg_of[16] = {
    REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
    REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

/* Called through oracle_signal_entry (stub.S), which clears RFLAGS.AC first. */
void oracle_on_fault(int sig, siginfo_t *si, void *ucv);
void oracle_on_fault(int sig, siginfo_t *si, void *ucv) {
  ucontext_t *uc = ucv;
  greg_t *g = uc->uc_mcontext.gregs;
  if (!oracle_running) {
    /* A fault in the harness itself: die loudly rather than loop. */
    char msg[160];
    int n = snprintf(msg, sizeof msg,
                     "oracle: fault outside the instruction under test: signal %d, trap %ld, rip %#lx, address %p\n",
                     sig, (long)g[REG_TRAPNO], (unsigned long)g[REG_RIP], si->si_addr);
    if (write(2, msg, (size_t)n) < 0) {}
    signal(sig, SIG_DFL);
    return;
  }
  faulted = 1;
  oracle_running = 0;
  fault.vector = (int32_t)g[REG_TRAPNO];
  fault.signo = sig;
  fault.error_code = (uint64_t)g[REG_ERR];
  fault.fault_addr = (uint64_t)(uintptr_t)si->si_addr;
  for (int i = 0; i < 16; i++) fault.regs.gpr[i] = (uint64_t)g[greg_of[i]];
  /* RF is set in the EFLAGS image of a fault (SDM Vol. 3A, 18.3.1.1): not the instruction's doing. */
  fault.regs.rflags = (uint64_t)g[REG_EFL] & ~(uint64_t)0x10000;
  fault.regs.rip = (uint64_t)g[REG_RIP];
  if (uc->uc_mcontext.fpregs) {
    memcpy(fault.regs.xmm, uc->uc_mcontext.fpregs->_xmm, 256);
    fault.regs.mxcsr = uc->uc_mcontext.fpregs->mxcsr;
    fault.regs.fcw = uc->uc_mcontext.fpregs->cwd;
    fault.regs.fsw = uc->uc_mcontext.fpregs->swd;
    /* the defaults, for the C code after it */
    uc->uc_mcontext.fpregs->mxcsr = 0x1f80;
    uc->uc_mcontext.fpregs->cwd = 0x37f;
    uc->uc_mcontext.fpregs->swd = 0;
  }
  /* A fault changes no register: the upper ymm halves are the ones loaded. */
  memcpy(fault.regs.ymmh, oracle_in + offsetof(struct oracle_regs, ymmh), 256);
  memcpy(fault.regs.zmmh, oracle_in + offsetof(struct oracle_regs, zmmh),
         offsetof(struct oracle_regs, mem) - offsetof(struct oracle_regs, zmmh));
  g[REG_RIP] = (greg_t)(uintptr_t)oracle_fault_return;
  g[REG_EFL] &= ~(greg_t)0x254500; /* DF, NT, RF, AC, ID: clean flags for the C code after it */
}

static void *map_at(unsigned long addr, size_t len, int prot) {
  void *p = mmap((void *)addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p != (void *)addr) {
    fprintf(stderr, "oracle: cannot map a page at %#lx: %s\n", addr,
            p == MAP_FAILED ? strerror(errno) : "the kernel chose another address");
    exit(2);
  }
  return p;
}

/*
 * Puts `jmp qword ptr [rip+disp32]` at `at`, its target `to` at the next 8-byte aligned
 * address after it (with RFLAGS.AC set by a case, a misaligned read there would raise #AC).
 * Nothing when it does not fit before `end`.
 */
static void put_jmp(uint8_t *at, uint64_t to, uint8_t *end) {
  uint8_t *slot = (uint8_t *)(((uintptr_t)at + 6 + 7) & ~(uintptr_t)7);
  if (slot + 8 > end) return;
  int32_t disp = (int32_t)(slot - (at + 6));
  at[0] = 0xff;
  at[1] = 0x25;
  memcpy(at + 2, &disp, 4);
  memcpy(slot, &to, 8);
}

static int read_full(void *buf, size_t n) {
  size_t got = fread(buf, 1, n, stdin);
  if (got == 0 && feof(stdin)) return 0;
  if (got != n) {
    fprintf(stderr, "oracle: short case record (%zu of %zu bytes)\n", got, n);
    exit(2);
  }
  return 1;
}

int main(void) {
  /* ymm0-15's upper halves are loaded and stored only where the OS enabled AVX. */
  __builtin_cpu_init();
  oracle_avx = __builtin_cpu_supports("avx") ? 1 : 0;
  /* zmm16-31, bits 511:256 and k0-k7 where the OS enabled AVX-512 (F and VL). */
  oracle_avx512 = oracle_avx && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vl") ? 1 : 0;
  if (getenv("ORACLE_INFO")) fprintf(stderr, "oracle: avx %d avx512 %d\n", oracle_avx, oracle_avx512);

  uint8_t *data = map_at(ORACLE_DATA, 2 * PAGE, PROT_READ | PROT_WRITE);
  map_at(ORACLE_GUARD, PAGE, PROT_NONE);
  uint8_t *code = map_at(ORACLE_CODE, PAGE, PROT_READ | PROT_WRITE);
  uint8_t *buf = (uint8_t *)ORACLE_BUF;

  static uint8_t altstack[64 * 1024];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) { perror("oracle: sigaltstack"); return 2; }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = oracle_signal_entry;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    if (sigaction(sigs[i], &sa, NULL) != 0) { perror("oracle: sigaction"); return 2; }
  }

  static char inbuf[1 << 16], outbuf[1 << 16];
  setvbuf(stdin, inbuf, _IOFBF, sizeof inbuf);
  setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

  struct oracle_case c;
  struct oracle_result r;
  const int trace = getenv("ORACLE_TRACE") != NULL;
  for (unsigned long index = 0; read_full(&c, sizeof c); index++) {
    if (trace) {
      fprintf(stderr, "case %lu:", index);
      for (unsigned i = 0; i < c.len && i < 16; i++) fprintf(stderr, " %02x", c.code[i]);
      fprintf(stderr, "\n");
    }
    if (c.len == 0 || c.len > 15 || c.code_offset >= PAGE) {
      fprintf(stderr, "oracle: bad case (len %u, offset %u)\n", c.len, c.code_offset);
      return 2;
    }
    /* The instruction, then jmp qword ptr [rip+0] with oracle_done's address. */
    /* The code page is writable only while the case is put in: an instruction that writes
       there faults (in the emulator too, where it is mapped read-only). */
    if (mprotect(code, PAGE, PROT_READ | PROT_WRITE) != 0) { perror("oracle: mprotect"); return 2; }
    memset(code, 0xcc, PAGE);
    uint8_t *at = code + c.code_offset;
    /* An instruction that runs past the page end must fault on the fetch: only its start is there. */
    unsigned room = PAGE - c.code_offset;
    memcpy(at, c.code, c.len < room ? c.len : room);
    /* Where execution goes on: the next instruction, or a taken branch's target 0x40 bytes on
       (ORACLE_TAKEN in _oracle.ts), each a jmp [rip+0] back to stub.S. */
    put_jmp(at + c.len, (uint64_t)(uintptr_t)oracle_done, code + PAGE);
    put_jmp(at + c.len + 0x40, (uint64_t)(uintptr_t)oracle_done_taken, code + PAGE);
    oracle_taken = 0;

    if (mprotect(code, PAGE, PROT_READ | PROT_EXEC) != 0) { perror("oracle: mprotect"); return 2; }

    memset(data, PATTERN, 2 * PAGE);
    memcpy(buf, c.regs.mem, ORACLE_BUF_LEN);
    memcpy(oracle_in, &c.regs, REGS_STATE);
    oracle_code = (uint64_t)(uintptr_t)at;

    memset(&r, 0, sizeof r);
    faulted = 0;
    int rc = oracle_run();
    if (rc != 0 || faulted) {
      r = fault;
    } else {
      memcpy(&r.regs, oracle_out, REGS_STATE);
      r.regs.rip = (uint64_t)(uintptr_t)at + c.len + (oracle_taken ? 0x40 : 0);
      r.vector = -1;
    }
    memcpy(r.regs.mem, buf, ORACLE_BUF_LEN);
    for (unsigned i = 0; i < 2 * PAGE; i++) {
      if (data + i < buf || data + i >= buf + ORACLE_BUF_LEN) r.stray += data[i] != PATTERN;
    }
    if (fwrite(&r, sizeof r, 1, stdout) != 1) { perror("oracle: write"); return 2; }
  }
  if (fflush(stdout) != 0) { perror("oracle: write"); return 2; }
  return 0;
}
