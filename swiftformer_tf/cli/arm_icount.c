/* QEMU TCG plugin: counts the guest instructions an emulated aarch64 process executes, in
 * total and by a few classes that tell which kernels ran (int8 dot product, int8 matrix
 * multiply, fp16 and fp32 arithmetic, SVE, SME). Every time the guest calls getppid() it
 * prints the counters so far on QEMU's log ("ICOUNT total=... int8_dot=..."): a worker that
 * calls os.getppid() right before and after one inference brackets exactly that inference.
 *
 * Counting is inline (one add per translation block and class): exact, and about as fast as
 * emulation without a plugin. Encodings from the Arm ARM (DDI 0487), Advanced SIMD tables.
 *
 * With the argument profile=on it also counts executions per translation block and, at every
 * second mark, prints "ICOUNT_TB <guest address> <instructions>" for each block that ran
 * since the mark before: the parent maps the addresses to the runtime's functions (XNNPACK's
 * kernels by name) to say where the instructions of one inference go.
 *
 * Build: gcc -O2 -shared -fPIC -I DIR_WITH_QEMU_PLUGIN_H -o libicount.so arm_icount.c
 * Run:   qemu-aarch64 -plugin ./libicount.so[,profile=on] -d plugin ... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { TOTAL, SIMD_FP, INT8_DOT, INT8_MMLA, INT8_WIDENING, FP16_ARITH, FP32_FMA, SVE, SME,
       N_CLASSES };
static const char *class_names[N_CLASSES] = {
    "total", "simd_fp", "int8_dot", "int8_mmla", "int8_widening", "fp16_arith", "fp32_fma",
    "sve", "sme"};
static uint64_t counters[N_CLASSES];

struct pattern { uint32_t mask, value; int cls; };
static const struct pattern patterns[] = {
    /* SDOT/UDOT (vector), SDOT/UDOT (by element), USDOT (vector), SUDOT/USDOT (by element) */
    {0x9FE0FC00, 0x0E809400, INT8_DOT}, {0x9FC0F400, 0x0F80E000, INT8_DOT},
    {0xBFE0FC00, 0x0E809C00, INT8_DOT}, {0xBF40F400, 0x0F00F000, INT8_DOT},
    /* SMMLA / UMMLA / USMMLA (i8mm) */
    {0xDFE0F400, 0x4E80A400, INT8_MMLA},
    /* SMLAL/UMLAL (vector, by element), SMULL/UMULL (vector), SADALP/UADALP: the ARMv8.0
     * int8 GEMM's widening multiply-accumulates */
    {0x9F20FC00, 0x0E208000, INT8_WIDENING}, {0x9F00F400, 0x0F002000, INT8_WIDENING},
    {0x9F20FC00, 0x0E20C000, INT8_WIDENING}, {0x9F3FFC00, 0x0E206800, INT8_WIDENING},
    /* Advanced SIMD three same (FP16): FMLA, FADD, FMUL, FMAX ... on half precision; FMLA,
     * FMLS, FMUL by element (half precision) */
    {0x9F60C400, 0x0E400400, FP16_ARITH}, {0x9FC0B400, 0x0F001000, FP16_ARITH},
    {0x9FC0F400, 0x0F009000, FP16_ARITH},
    /* FMLA/FMLS single precision (vector, by element) */
    {0xBFA0FC00, 0x0E20CC00, FP32_FMA}, {0xBFC0B400, 0x0F801000, FP32_FMA},
};

/* Per-block execution counts (profile=on). Translation runs under QEMU's lock and the worker
 * is single-threaded, so a plain growing array does. */
struct block { uint64_t vaddr, insns, executions, at_mark; };
static struct block **blocks;
static size_t n_blocks, capacity;
static int profile, marks_seen;

static void add_block(struct qemu_plugin_tb *tb, size_t n) {
    struct block *b = calloc(1, sizeof *b);
    if (!b) return;
    if (n_blocks == capacity) {
        size_t wanted = capacity ? 2 * capacity : 65536;
        struct block **grown = realloc(blocks, wanted * sizeof *grown);
        if (!grown) { free(b); return; }
        blocks = grown, capacity = wanted;
    }
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->insns = n;
    blocks[n_blocks++] = b;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->executions, 1);
}

static void print_blocks(void) {
    char line[64];
    for (size_t i = 0; i < n_blocks; i++) {
        struct block *b = blocks[i];
        uint64_t ran = b->executions - b->at_mark;
        if (ran) {
            snprintf(line, sizeof line, "ICOUNT_TB %llx %llu\n", (unsigned long long)b->vaddr,
                     (unsigned long long)(ran * b->insns));
            qemu_plugin_outs(line);
        }
    }
}

static void snapshot_blocks(void) {
    for (size_t i = 0; i < n_blocks; i++) blocks[i]->at_mark = blocks[i]->executions;
}

static int is_simd_fp(uint32_t w) { return ((w >> 25) & 7) == 7; }   /* op0 = x111 */
static int is_sve(uint32_t w) { return ((w >> 25) & 0xF) == 2; }      /* op0 = 0010 */
static int is_sme(uint32_t w) { return (w >> 31) == 1 && ((w >> 25) & 0xF) == 0; }

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    uint64_t block[N_CLASSES] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    block[TOTAL] = n;
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, qemu_plugin_insn_data(qemu_plugin_tb_get_insn(tb, i)), sizeof w);
        block[SIMD_FP] += is_simd_fp(w);
        block[SVE] += is_sve(w);
        block[SME] += is_sme(w);
        for (size_t k = 0; k < sizeof patterns / sizeof patterns[0]; k++)
            if ((w & patterns[k].mask) == patterns[k].value) {
                block[patterns[k].cls]++;
                break;
            }
    }
    for (int c = 0; c < N_CLASSES; c++)
        if (block[c])
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                     &counters[c], block[c]);
    if (profile) add_block(tb, n);
}

static void print_counters(const char *when) {
    char line[512];
    int used = snprintf(line, sizeof line, "ICOUNT %s", when);
    for (int c = 0; c < N_CLASSES; c++)
        used += snprintf(line + used, sizeof line - used, " %s=%llu", class_names[c],
                         (unsigned long long)counters[c]);
    snprintf(line + used, sizeof line - used, "\n");
    qemu_plugin_outs(line);
}

#define AARCH64_NR_GETPPID 173

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t number, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8) {
    if (number != AARCH64_NR_GETPPID) return;
    print_counters("mark");
    if (profile) {
        if (++marks_seen % 2 == 0) print_blocks();  /* the blocks of what ran in between */
        snapshot_blocks();
    }
}

static void at_exit(qemu_plugin_id_t id, void *data) { print_counters("exit"); }

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "profile=on") == 0) profile = 1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
