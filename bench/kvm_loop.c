/*
 * The baseline for dhyve's exit benchmark: the smallest KVM run loop in C.
 * It loads a flat real-mode image at 0x10000, enters it at CS=0x1000, IP=0,
 * and re-enters after every port-I/O exit until the guest writes to the
 * debug-exit port (0xf4). It prints one line of JSON:
 *   {"io_exits": N, "ns": T}
 * where T is the time from the first KVM_RUN to the debug-exit exit.
 * Same VM shape as dhyve's: in-kernel irqchip and PIT, TSS and identity map.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (4u << 20)
#define LOAD 0x10000

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s image.bin\n", argv[0]); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) die("open image");
  unsigned char *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  size_t n = fread(mem + LOAD, 1, MEM_SIZE - LOAD, f);
  fclose(f);
  if (n == 0) die("read image");

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000) < 0) die("KVM_SET_TSS_ADDR");
  __u64 idmap = 0xfffbc000;
  if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  struct kvm_userspace_memory_region region = {0, 0, 0, MEM_SIZE, (unsigned long)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {0};
  if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  struct kvm_sregs s;
  if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) die("KVM_GET_SREGS");
  s.cs.selector = LOAD >> 4; s.cs.base = LOAD;
  s.ds = s.es = s.fs = s.gs = s.cs; s.ds.type = s.es.type = s.fs.type = s.gs.type = 3;
  s.ss.selector = 0; s.ss.base = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0) die("KVM_SET_SREGS");
  struct kvm_regs r;
  memset(&r, 0, sizeof r);
  r.rip = 0; r.rsp = 0x7000; r.rflags = 2;
  if (ioctl(vcpu, KVM_SET_REGS, &r) < 0) die("KVM_SET_REGS");

  long io = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
      return 1;
    }
    io++;
    if (run->io.port == 0xf4) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  printf("{\"io_exits\": %ld, \"ns\": %lld}\n", io, ns);
  return 0;
}
