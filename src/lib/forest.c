/*
 * forest.c -- XGBoost tree ensembles compiled for the request path: the
 * margin of one row in about a microsecond and its exact path-dependent
 * TreeSHAP contributions in a few tens (300 trees of depth 6), about half
 * that per row when rows are explained eight at a time.
 *
 * Loading reads the JSON object XGBoost's SaveModel writes (binary:logistic,
 * gbtree, numerical splits) and lays every tree out three times, each for
 * one job:
 *
 *   canonical  all reachable nodes of all trees in one array, depth-first
 *              per tree, with children, cover and leaf value as XGBoost has
 *              them. The other layouts are built from it, and the classic
 *              TreeSHAP reference runs on it.
 *   predict    12-byte nodes {threshold, row index, left child}, breadth-
 *              first per tree, so the two children of a node are adjacent
 *              (right = left + 1). A leaf steps to itself, which lets
 *              ch_forest_predict() walk 16 trees side by side for a fixed
 *              number of steps (the group's depth) with no data-dependent
 *              branch: 16 independent load chains in flight.
 *   shap       one record per split, leaves folded into their parents, in
 *              three kinds (inode, tnode, bnode below) that the kernel
 *              processes in straight loops.
 *
 * Exactness against libxgboost. XGBoost converts each input to float and
 * goes left when float(x) < threshold, NaN following the node's default
 * direction; it starts every margin at the base margin -logf(1/base_score -
 * 1) computed in float and adds the leaf values tree by tree in float. All
 * of this is replicated (missing values through the "doubled row", see
 * pnode), so margins are bit-identical to XGBoost's. The one gap: JSON
 * numbers are parsed to double and then rounded to float where XGBoost
 * parses to float directly; the two differ only for decimal strings within
 * 2^-53 of a float rounding boundary, which XGBoost's own shortest-
 * representation writer does not produce.
 *
 * Contributions: path-dependent TreeSHAP, the quantity XGBoost's
 * pred_contribs computes with the recursion of Lundberg, Erion and Lee,
 * "Consistent individualized feature attribution for tree ensembles"
 * (arXiv 1802.03888, Algorithm 2), which costs O(L D^2) per tree (L
 * leaves, depth D). We compute the same numbers with the polynomial
 * formulation of Linear TreeShap (Yu et al., NeurIPS 2022), O(N D) per tree
 * for N nodes, evaluated by quadrature. For a leaf l whose path has unique
 * features j (repeated splits on a feature merged, as TreeSHAP does) with
 * merged cover fraction Z_j and O_j = 1 if x satisfies every split on j on
 * the path (else 0), the Shapley weights are Beta integrals, so
 *
 *     phi_k += v_l (O_k - Z_k) integral_0^1 prod_{j != k} (Z_j + t (O_j - Z_j)) dt.
 *
 * The integrand is a polynomial of degree < D, so an m-point Gauss-Legendre
 * rule with 2m >= D is exact; every polynomial is carried as its values at
 * the m points, in groups of 4 (a group covers paths of up to 8 distinct
 * features; deeper trees use several). Per tree, a top-down pass carries
 * pex (the path's factors except the split's own feature's), a bottom-up
 * pass carries q (the leaves below times their factors below), and each
 * split adds pex * D to its feature's accumulator, where D is the share of
 * its leaves (see SHAP_KERNEL()). Fast TreeSHAP v2 (Yang 2021) would
 * instead tabulate every leaf's 2^D patterns of satisfied conditions:
 * megabytes per model, scattered reads.
 *
 * The passes visit every node whatever the row, so several rows can share
 * them: the kernels take 1, 2, 4 or 8 rows, each row's points in its own
 * lanes (a row is a vector of 4 doubles with AVX2, half an AVX-512
 * register, two SSE2 registers in the generic kernels; more rows take
 * more vectors), and only the directions, bit masks over the rows,
 * differ. Sharing saves the per-node work that is not
 * arithmetic on the polynomials -- loading the record, comparing, masks,
 * addresses, the loop -- which is most of the instructions: with AVX-512,
 * eight rows cost about 3.5 times one (docs/performance.md). Kernels exist
 * for the generic target, AVX2 with FMA and AVX-512, chosen at load by
 * what the CPU has (__builtin_cpu_supports). Within one instruction set
 * every kernel computes each lane with the same operations in the same
 * order, so a row gets the same bits alone or in a batch.
 * Trees the kernel cannot do exactly (a repeated feature whose merged cover
 * fraction underflowed to 0, more than 64 distinct features on one path)
 * take the classic recursion instead; XGBoost's own models essentially
 * never have either.
 *
 * Contributions are computed in double from XGBoost's float cover fractions
 * (cover(child) / cover(parent) in float, merged products in float, as
 * XGBoost does), so they agree with pred_contribs to its float rounding.
 * The bias is the base margin plus the trees' expected values, plus the
 * difference between the float margin and the double sum of the same
 * leaves, so that the contributions add up to the returned margin (to
 * double rounding), and that margin is XGBoost's.
 *
 * Workload: loaded once per model, then scored and explained per request
 * from many threads. Nothing allocates after loading; the SHAP kernel's
 * scratch lives in a per-thread ch_forest_ws.
 */
#include "ch/forest.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/text.h"
#include "forest_int.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* Deepest tree accepted, in edges from the root. XGBoost's depthwise
 * growth rarely exceeds 20; lossguide trees can be deeper. */
#ifndef CH_FOREST_MAX_DEPTH
#define CH_FOREST_MAX_DEPTH 256
#endif

/* Most nodes in one tree, and in all trees together (indices are 32-bit). */
#ifndef CH_FOREST_MAX_TREE_NODES
#define CH_FOREST_MAX_TREE_NODES ((size_t)1 << 26)
#endif
#define MAX_TOTAL_NODES ((size_t)1 << 31)

/* Most threads ch_forest_predict_batch() starts, and fewest rows each. */
#ifndef CH_FOREST_MAX_THREADS
#define CH_FOREST_MAX_THREADS 64
#endif
#define MIN_ROWS_PER_THREAD 256

/* Most features; the kernel's 32-bit byte offsets into its per-feature
 * accumulators (32 bytes each) stay in range. */
#ifndef CH_FOREST_MAX_FEATURES
#define CH_FOREST_MAX_FEATURES ((size_t)1 << 26)
#endif

/* Trees predicted side by side. */
#define GROUP 16

/* The fast kernel handles up to NV_MAX vectors of 4 quadrature points,
 * exact for paths of up to 8 * NV_MAX distinct features. */
#define NV_MAX 8

#define TREES_PATH "learner.gradient_booster.model.trees"

/* Rows the SHAP kernels explain side by side: 1, 2, 4 or 8 (kernel index
 * ROWS_LOG2(R)). */
#define ROWS_N       4
#define ROWS_MAX     8
#define ROWS_LOG2(R) ((R) == 1 ? 0 : (R) == 2 ? 1 : (R) == 4 ? 2 : 3)

/* Quadrature values: half a row's 4 points (SSE2), a row's (AVX2), two
 * rows' (AVX-512). */
typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

/* A node as XGBoost has it, with children as indices into the same array. */
typedef struct cnode {
    int32_t left;  /* canonical index of the left child; -1 for a leaf */
    int32_t right; /* canonical index of the right child; -1 for a leaf */
    uint32_t feat; /* split feature */
    float thr;     /* split threshold; the leaf value for a leaf */
    float cover;   /* sum of hessians (XGBoost's sum_hessian) */
    uint8_t dl;    /* 1: missing values go left */
} cnode;

/*
 * Rows are read as XGBoost reads them, from a "doubled row" of 2 n floats:
 * float(x[j]) at j and at n + j, except that a missing value is -inf at j
 * and +inf at n + j. A split on feature j whose missing values go left
 * reads index j, one whose missing values go right reads n + j; either way
 * "go right iff value >= threshold" is then XGBoost's rule (left iff
 * x < threshold, missing to the default side), with no test for NaN.
 * Thresholds are finite, so the infinities always fall on the right side.
 */

/* A predict node. Internal: go right iff xb[fx] >= thr. Leaf: thr is NaN
 * (never >=), so it steps to 'left' = itself forever. Leaf values are in
 * the parallel array pleaf. */
typedef struct pnode {
    float thr;     /* threshold; NaN for a leaf */
    uint32_t fx;   /* index into the doubled row; 0 for a leaf */
    uint32_t left; /* index of the left child (right = left + 1); a leaf: itself */
} pnode;

/*
 * The SHAP kernel's records. A tree's splits are "inner" (a child is a
 * split: inode), "bottom" (both children are leaves: bnode) or, for an
 * inner split whose two children are bottom splits, all three on features
 * new to their paths, one "twig" (tnode). Each record has a slot in the
 * kernel's scratch arrays: inner nodes first, breadth-first, then twigs,
 * then bottom nodes on a feature new to their path, then the other bottom
 * nodes (tree_shap_layout()); 'ni' is the number of split slots. The leaf
 * children of inner nodes have the slots after them, in the order of the
 * tree's lkid records, so that their q (the leaf value, which the kernel
 * writes there first) is read like a split child's. An edge is 2 * slot +
 * side (0 left, 1 right); edge 2 * ni is a scratch byte that always holds
 * all rows.
 */
typedef struct inode {
    double a[2];       /* merged cover fraction Z' of the left and right edge */
    uint32_t feat;     /* split feature */
    float thr;         /* threshold, as in pnode */
    uint32_t child[2]; /* slots of the children */
    uint32_t fx;       /* index into the doubled row */
    uint32_t pe;       /* edge below the nearest split on 'feat' above; 2 ni if none */
    uint32_t rcp;      /* with 'pe' set: its record in ch_forest.rcp (see rcp_init()) */
} inode;
/* The kernel addresses scratch by byte offset: 'child' and 'slot' hold
 * slot * nv * sizeof(v4d) and 'feat' feature * sizeof(v4d) once a tree is
 * laid out (see tree_shap_offsets()). */

/* A leaf child of an inner node: its slot and value. */
typedef struct lkid {
    double v;      /* leaf value */
    uint32_t slot; /* its slot (a byte offset, as in inode) */
} lkid;

/* A twig: a split (on a feature new to its path) whose two children are
 * bottom splits on features new to theirs. Its q is a quadratic in t and
 * everything else follows from three directions, so all three nodes are
 * done at once (see the twig loop of SHAP_KERNEL()). Differences the
 * kernel would compute for every row are stored instead. */
typedef struct tnode {
    double a[2];       /* cover fractions of the twig's two edges */
    double sigma;      /* a[0] cs[0] + a[1] cs[1], cs the children's s (see bnode) */
    double al[2];      /* cs[h] - sigma: alpha when x takes side h */
    double cd[2][2];   /* the children's dv (see bnode) */
    uint32_t slot;     /* its slot (a byte offset, as in inode) */
    uint32_t feat;     /* its feature (a byte offset) */
    uint32_t fx;       /* index into the doubled row */
    float thr;         /* threshold */
    uint32_t cfeat[2]; /* the children's features (byte offsets) */
    uint32_t cfx[2];   /* the children's row indices */
    float cthr[2];     /* the children's thresholds */
} tnode;

typedef struct bnode {
    double dv[2];  /* v[c] - s: leaf value c, less the mean */
    double s;      /* a[0] v[0] + a[1] v[1]: the node's mean value */
    uint32_t feat; /* split feature */
    float thr;     /* threshold */
    uint32_t slot; /* its slot */
    uint32_t fx;   /* index into the doubled row */
    uint32_t pe;   /* as in inode */
    uint32_t rep;  /* 1: the feature splits on the path above */
    uint32_t rcp;  /* as in inode */
} bnode;

/* Per tree. */
typedef struct tree_info {
    uint32_t c_off;       /* first canonical node */
    uint32_t c_n;         /* canonical nodes */
    uint32_t p_root;      /* predict root */
    uint32_t in_off;      /* first inode */
    uint32_t n_in;        /* inner split nodes */
    uint32_t tw_off;      /* first tnode */
    uint32_t n_tw;        /* twigs */
    uint32_t bn_off;      /* first bnode */
    uint32_t n_bot;       /* bottom split nodes */
    uint32_t n_bot_plain; /* of which on a feature new to their path (listed first) */
    uint32_t lk_off;      /* first lkid */
    uint32_t n_lk;        /* leaf children of inner nodes */
    uint16_t depth;       /* deepest leaf, edges */
    uint8_t nv;           /* vectors of quadrature points (0 when classic) */
    uint8_t classic;      /* 1: the SHAP kernel uses classic TreeSHAP here */
    double expect;        /* cover-weighted mean of the leaves (the tree's bias) */
} tree_info;

/* What the kernel reads and writes for R rows (and, per tree, the tree).
 * A group of quadrature points takes 4 R doubles, row r's in 4r..4r+3. */
typedef struct kargs {
    const inode *in;     /* inner nodes */
    const tnode *tw;     /* twigs */
    const bnode *bn;     /* bottom nodes */
    const lkid *lk;      /* leaf children of inner nodes */
    uint32_t n_lk;       /* leaf children of inner nodes */
    uint32_t n_in;       /* inner nodes */
    uint32_t n_tw;       /* twigs */
    uint32_t n_plain;    /* bottom nodes on a new feature */
    uint32_t n_bot;      /* bottom nodes */
    const float *xf;     /* the doubled rows, interleaved: element fx of row r at xf[R fx + r] */
    const char *tq;      /* nv vectors: quadrature nodes t */
    const char *wq;      /* weights */
    const char *uq;      /* 1 - t */
    const char *msk;     /* lane masks, see lane_tabs */
    const uint8_t *moff; /* their offsets by row mask and vector, see lane_tabs */
    const v4d *rcp;      /* reciprocal records, see rcp_init() */
    void *pex;           /* scratch, (slots + 1) * nv vectors */
    void *q;             /* scratch, (slots + 1) * nv vectors */
    void *acc;           /* per feature, lanes summed at the end */
    uint8_t *oe;         /* scratch, 2 slots + 1 row masks */
} kargs;

/*
 * Constant vectors the kernels read, for vectors of LW = 2, 4 or 8 lanes
 * (index WIDX(LW)); a row's 4 points take half a vector, one, or half of
 * one. quad[]: for nv = 1, 2, ..., NV_MAX in turn, nv groups of
 * quadrature nodes t, nv of weights and nv of 1 - t, a group being 4
 * points (LW 2 and 4: the same doubles) or those 4 twice (LW 8, two rows).
 * msk[]: for each mask m of the rows a vector holds (1 bit for LW 2 and 4,
 * 2 for LW 8), a vector with all bits set in the lanes of the rows in m, 0
 * elsewhere. moff[ROWS_LOG2(R)][]: for R rows in R 4 / LW vectors, for
 * each mask m of R bits and vector c, at m R 4 / LW + c, the byte offset
 * in msk[] of vector c's mask.
 */
typedef struct lane_tabs {
    const char *quad[3];
    const char *msk[3];
    const uint8_t *moff[ROWS_N][3];
} lane_tabs;

/* Table index of vectors of 'lw' lanes. */
#define WIDX(lw) ((lw) == 2 ? 0 : (lw) == 4 ? 1 : 2)

/* Instruction sets with a kernel of their own, and how many rows
 * ch_forest_shap_batch() gives each at once. */
enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
#define BATCH_GENERIC 8
#define BATCH_AVX2    8
#define BATCH_AVX512  8

/* Adds the contributions of every fast tree of a forest to k->acc. */
typedef void (*shap_kernel_fn)(const struct ch_forest *f, kargs *k);

struct ch_forest {
    size_t n_features;             /* row width callers feed */
    size_t n_trees;                /* trees */
    float base_f;                  /* base margin, as XGBoost computes it (float) */
    double bias;                   /* base_f + sum of the trees' expected values */
    tree_info *trees;              /* n_trees */
    cnode *cn;                     /* canonical nodes, all trees */
    size_t n_cn;                   /* entries of 'cn' */
    pnode *pn;                     /* predict nodes; pn[0] is a dummy leaf of value 0 */
    float *pleaf;                  /* leaf value per predict node; 0 for splits */
    size_t n_pn;                   /* entries of 'pn' */
    uint32_t *proot;               /* predict roots, padded with 0 to a multiple of GROUP */
    uint16_t *gdepth;              /* steps per group of GROUP trees */
    size_t n_groups;               /* groups */
    inode *in;                     /* SHAP inner nodes, all trees */
    size_t n_in;                   /* entries of 'in' */
    tnode *tw;                     /* SHAP twigs, all trees */
    size_t n_tw;                   /* entries of 'tw' */
    bnode *bn;                     /* SHAP bottom nodes, all trees */
    size_t n_bn;                   /* entries of 'bn' */
    lkid *lk;                      /* leaf children of SHAP inner nodes, all trees */
    size_t n_lk;                   /* entries of 'lk' */
    void *lanes_mem;               /* allocation behind 'lanes' */
    lane_tabs lanes;               /* the kernels' constant vectors */
    v4d *rcp;                      /* reciprocal records, see rcp_init() */
    size_t n_rcp;                  /* vectors of 'rcp' */
    void *rcp_mem;                 /* allocation behind 'rcp' */
    size_t max_slots;              /* most slots (split nodes, leaf children) of one fast tree */
    int max_nv;                    /* most quadrature vectors of one fast tree */
    size_t classic_depth;          /* deepest classic tree + 1 (0: none) */
    size_t max_depth;              /* deepest tree */
    size_t n_repeat;               /* split nodes with a repeated feature */
    size_t n_classic;              /* classic trees */
    int isa;                       /* ISA_* of the kernels in use */
    size_t batch_rows;             /* rows ch_forest_shap_batch() gives a kernel at once */
    shap_kernel_fn kernel[ROWS_N]; /* for 1, 2, 4 and 8 rows */
};

/* One element of classic TreeSHAP's unique path. */
typedef struct path_el {
    int64_t feat; /* feature, -1 for the root's placeholder */
    double zf;    /* zero fraction (merged cover fraction) */
    double of;    /* one fraction (x follows every split on the feature) */
    double pw;    /* permutation weight */
} path_el;

struct ch_forest_ws {
    void *mem;        /* the one allocation */
    size_t max_slots; /* capacity: slots (split nodes, leaf children) */
    int max_nv;       /* capacity: quadrature vectors */
    size_t n_feat;    /* capacity: features */
    size_t n_path;    /* capacity: classic path elements */
    size_t rows;      /* capacity: rows explained at once (a power of 2, <= ROWS_MAX) */
    v4d *pex;         /* (max_slots + 1) * max_nv * rows */
    v4d *q;           /* (max_slots + 1) * max_nv * rows */
    v4d *acc;         /* n_feat * rows */
    float *xf;        /* 2 n_feat * rows: the doubled rows, interleaved */
    uint8_t *oe;      /* 2 max_slots + 1 */
    path_el *path;    /* n_path, or NULL */
};

/* Vectors before the quadrature tables for 'nv' in lane_tabs.quad[]. */
static size_t quad_off(int nv)
{
    return 3 * (size_t)nv * (size_t)(nv - 1) / 2;
}

/* ------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------ */

/* 'n' bytes aligned to 128 (the widest vector, v8d, needs 64); '*raw'
 * gets what to free. */
static void *alloc_aligned(size_t n, void **raw)
{
    unsigned char *p;
    uintptr_t a;
    if (n > SIZE_MAX - 128)
        return NULL;
    p = ch_calloc(1, n + 128);
    *raw = p;
    if (p == NULL)
        return NULL;
    a = ((uintptr_t)p + 127u) & ~(uintptr_t)127u;
    return p + (a - (uintptr_t)p);
}

/* ------------------------------------------------------------------------
 * Reading the JSON
 * ------------------------------------------------------------------------ */

static ch_err fail(ch_error *err, ch_err code, const char *fmt, ...) CH_PRINTF(3, 4);
static ch_err fail(ch_error *err, ch_err code, const char *fmt, ...)
{
    char msg[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ch_error_set(err, code, "xgboost model: %s", msg);
}

/* A parameter XGBoost writes as a string ("5E-1") or a plain number. */
static int param_number(const ch_json *v, double *out)
{
    size_t len = 0;
    const char *s = ch_json_str(v, &len);
    if (s != NULL)
        return ch_parse_double(s, len, out);
    if (ch_json_typeof(v) != CH_JSON_NUMBER)
        return -1;
    return ch_json_num(v, out);
}

/* Member 'key' of 'obj' as an object or array (type 't'), with an error
 * naming 'path'.'key'. */
static ch_err need(const ch_json *obj, const char *key, ch_json_type t, const char *path,
                   const ch_json **out, ch_error *err)
{
    const ch_json *v = ch_json_get(obj, key);
    if (v == NULL)
        return fail(err, CH_EFORMAT, "%s%s%s: missing", path, *path ? "." : "", key);
    if (ch_json_typeof(v) != t)
        return fail(err, CH_EFORMAT, "%s%s%s: expected %s, got %s", path, *path ? "." : "", key,
                    ch_json_type_name(t), ch_json_type_name(ch_json_typeof(v)));
    *out = v;
    return CH_OK;
}

/* Element 'j' of array 'arr' as a whole number in [lo, hi]; booleans count
 * as 0/1 (XGBoost writes default_left either way across versions). */
static int arr_int(const ch_json *arr, size_t j, long lo, long hi, long *out)
{
    const ch_json *v = ch_json_at(arr, j);
    double d;
    int b;
    if (ch_json_typeof(v) == CH_JSON_BOOL && ch_json_bool(v, &b) == 0) {
        d = b ? 1.0 : 0.0;
    } else if (ch_json_num(v, &d) != 0) {
        return -1;
    }
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return -1;
    *out = (long)d;
    return 0;
}

/* Element 'j' of 'arr' as a finite float; 'nonneg' also requires >= 0. */
static int arr_float(const ch_json *arr, size_t j, int nonneg, float *out)
{
    double d;
    if (ch_json_num(ch_json_at(arr, j), &d) != 0 || !isfinite(d) || fabs(d) > FLT_MAX ||
        (nonneg && d < 0))
        return -1;
    *out = (float)d;
    return 0;
}

/* Scratch for loading, sized for the largest tree. */
typedef struct load_tmp {
    int32_t *l;         /* left child per JSON node */
    int32_t *r;         /* right child */
    uint32_t *feat;     /* split feature */
    float *thr;         /* split_conditions */
    float *cover;       /* sum_hessian */
    uint8_t *dl;        /* default_left */
    int32_t *canon;     /* JSON node -> canonical index, -1 unvisited */
    int32_t *stack;     /* DFS stack: node */
    int32_t *stack_d;   /* DFS stack: depth */
    int32_t *lidx;      /* canonical (tree-local) -> split index, -1 for leaves */
    int32_t *queue;     /* BFS queue */
    int32_t *last_edge; /* per feature: edge of the latest split on the path, -1 */
    uint32_t *distinct; /* features on the current path */
    float *ea;          /* merged cover fraction per edge (2 * local node + side) */
    uint8_t *rep;       /* per local node: its feature splits above it */
    uint8_t *kind;      /* per local node: K_* */
    bnode *kid;         /* per local node: a twig child's record */
    float *zp_in;       /* per inode of the forest: Z_prev (see rcp_init()) */
    float *zp_bn;       /* per bnode of the forest: Z_prev */
} load_tmp;

static void tmp_free(load_tmp *t)
{
    ch_free(t->l);
    ch_free(t->r);
    ch_free(t->feat);
    ch_free(t->thr);
    ch_free(t->cover);
    ch_free(t->dl);
    ch_free(t->canon);
    ch_free(t->stack);
    ch_free(t->stack_d);
    ch_free(t->lidx);
    ch_free(t->queue);
    ch_free(t->last_edge);
    ch_free(t->distinct);
    ch_free(t->ea);
    ch_free(t->rep);
    ch_free(t->kind);
    ch_free(t->kid);
    ch_free(t->zp_in);
    ch_free(t->zp_bn);
}

static ch_err tmp_alloc(load_tmp *t, size_t n, size_t n_feat, ch_error *err)
{
    memset(t, 0, sizeof *t);
    t->l = ch_malloc_array(n, sizeof *t->l);
    t->r = ch_malloc_array(n, sizeof *t->r);
    t->feat = ch_malloc_array(n, sizeof *t->feat);
    t->thr = ch_malloc_array(n, sizeof *t->thr);
    t->cover = ch_malloc_array(n, sizeof *t->cover);
    t->dl = ch_malloc_array(n, sizeof *t->dl);
    t->canon = ch_malloc_array(n, sizeof *t->canon);
    t->stack = ch_malloc_array(n, sizeof *t->stack);
    t->stack_d = ch_malloc_array(n, sizeof *t->stack_d);
    t->lidx = ch_malloc_array(n, sizeof *t->lidx);
    t->queue = ch_malloc_array(n, sizeof *t->queue);
    t->last_edge = ch_malloc_array(n_feat + 1, sizeof *t->last_edge);
    t->distinct = ch_malloc_array(CH_FOREST_MAX_DEPTH + 1, sizeof *t->distinct);
    t->ea = ch_malloc_array(2 * n + 1, sizeof *t->ea);
    t->rep = ch_malloc_array(n, sizeof *t->rep);
    t->kind = ch_malloc_array(n, sizeof *t->kind);
    t->kid = ch_malloc_array(n, sizeof *t->kid);
    if (t->l == NULL || t->r == NULL || t->feat == NULL || t->thr == NULL || t->cover == NULL ||
        t->dl == NULL || t->canon == NULL || t->stack == NULL || t->stack_d == NULL ||
        t->lidx == NULL || t->queue == NULL || t->last_edge == NULL || t->distinct == NULL ||
        t->ea == NULL || t->rep == NULL || t->kind == NULL || t->kid == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t k = 0; k <= n_feat; k++)
        t->last_edge[k] = -1;
    return CH_OK;
}

/* The node arrays of tree 'ti' with their common length in '*n'. */
typedef struct tree_arrays {
    const ch_json *l, *r, *si, *sc, *dl, *sh, *st;
} tree_arrays;

static ch_err tree_arrays_get(const ch_json *tree, size_t ti, tree_arrays *a, size_t *n,
                              ch_error *err)
{
    static const char *const names[] = {"left_children",    "right_children", "split_indices",
                                        "split_conditions", "default_left",   "sum_hessian"};
    const ch_json **slots[] = {&a->l, &a->r, &a->si, &a->sc, &a->dl, &a->sh};
    char path[96];
    const ch_json *tp;
    ch_err rc;

    snprintf(path, sizeof path, TREES_PATH "[%zu]", ti);
    if (ch_json_typeof(tree) != CH_JSON_OBJECT)
        return fail(err, CH_EFORMAT, "%s: expected object, got %s", path,
                    ch_json_type_name(ch_json_typeof(tree)));
    for (size_t k = 0; k < 6; k++) {
        if ((rc = need(tree, names[k], CH_JSON_ARRAY, path, slots[k], err)) != CH_OK)
            return rc;
        if (k == 0)
            *n = ch_json_len(a->l);
        else if (ch_json_len(*slots[k]) != *n)
            return fail(err, CH_EFORMAT, "%s.%s: %zu entries, left_children has %zu", path,
                        names[k], ch_json_len(*slots[k]), *n);
    }
    if (*n == 0)
        return fail(err, CH_EFORMAT, "%s.left_children: empty tree", path);
    if (*n > CH_FOREST_MAX_TREE_NODES)
        return fail(err, CH_EMODEL, "%s: %zu nodes, more than %zu", path, *n,
                    (size_t)CH_FOREST_MAX_TREE_NODES);
    a->st = ch_json_get(tree, "split_type");
    if (a->st != NULL && (ch_json_typeof(a->st) != CH_JSON_ARRAY || ch_json_len(a->st) != *n))
        return fail(err, CH_EFORMAT, "%s.split_type: expected an array of %zu entries", path, *n);
    tp = ch_json_get(tree, "tree_param");
    if (tp != NULL) {
        double v;
        const ch_json *slv = ch_json_get(tp, "size_leaf_vector");
        const ch_json *nn = ch_json_get(tp, "num_nodes");
        if (slv != NULL && (param_number(slv, &v) != 0 || (v != 0 && v != 1)))
            return fail(err, CH_EMODEL,
                        "%s.tree_param.size_leaf_vector: vector leaves are not "
                        "supported",
                        path);
        if (nn != NULL && (param_number(nn, &v) != 0 || v != (double)*n))
            return fail(err, CH_EFORMAT, "%s.tree_param.num_nodes: does not match the %zu nodes",
                        path, *n);
    }
    return CH_OK;
}

/* Reads and checks the node arrays of tree 'ti' into 't'. */
static ch_err tree_parse(const tree_arrays *a, size_t n, size_t ti, size_t n_feat, load_tmp *t,
                         ch_error *err)
{
    for (size_t j = 0; j < n; j++) {
        long l, r, v;
        if (arr_int(a->l, j, -1, (long)n - 1, &l) != 0 || l == 0)
            return fail(err, CH_EFORMAT,
                        TREES_PATH "[%zu].left_children[%zu]: not -1 or a node "
                                   "index in 1..%zu",
                        ti, j, n - 1);
        if (arr_int(a->r, j, -1, (long)n - 1, &r) != 0 || r == 0)
            return fail(err, CH_EFORMAT,
                        TREES_PATH "[%zu].right_children[%zu]: not -1 or a node "
                                   "index in 1..%zu",
                        ti, j, n - 1);
        if ((l < 0) != (r < 0) || (l >= 0 && l == r))
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu]: node %zu has children %ld and %ld", ti,
                        j, l, r);
        t->l[j] = (int32_t)l;
        t->r[j] = (int32_t)r;
        t->feat[j] = 0;
        if (l >= 0) {
            if (arr_int(a->si, j, 0, (long)n_feat - 1, &v) != 0)
                return fail(err, CH_EFORMAT,
                            TREES_PATH "[%zu].split_indices[%zu]: not a "
                                       "feature index below num_feature %zu",
                            ti, j, n_feat);
            t->feat[j] = (uint32_t)v;
            if (a->st != NULL && (arr_int(a->st, j, 0, 1, &v) != 0 || v != 0))
                return fail(err, CH_EMODEL,
                            TREES_PATH "[%zu].split_type[%zu]: categorical "
                                       "splits are not supported",
                            ti, j);
        }
        if (arr_float(a->sc, j, 0, &t->thr[j]) != 0)
            return fail(err, CH_EFORMAT,
                        TREES_PATH "[%zu].split_conditions[%zu]: not a finite "
                                   "float",
                        ti, j);
        if (arr_int(a->dl, j, 0, 1, &v) != 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].default_left[%zu]: not 0 or 1", ti, j);
        t->dl[j] = (uint8_t)v;
        if (arr_float(a->sh, j, 1, &t->cover[j]) != 0)
            return fail(err, CH_EFORMAT,
                        TREES_PATH "[%zu].sum_hessian[%zu]: not a finite "
                                   "number >= 0",
                        ti, j);
    }
    return CH_OK;
}

/*
 * Walks tree 'ti' (parsed into 't', 'n' JSON nodes) from its root in
 * pre-order and appends its reachable nodes to f->cn. Checks that it is a
 * tree (no node reached twice), that split nodes have positive cover (the
 * cover fractions divide by it) and the depth limit. Nodes XGBoost left
 * unreachable (pruned) are skipped.
 */
static ch_err tree_canon(ch_forest *f, size_t ti, size_t n, load_tmp *t, ch_error *err)
{
    tree_info *ts = &f->trees[ti];
    size_t top = 0;
    size_t base = f->n_cn;
    size_t depth = 0;

    for (size_t j = 0; j < n; j++)
        t->canon[j] = -1;
    t->stack[top] = 0;
    t->stack_d[top] = 0;
    top++;
    while (top > 0) {
        int32_t j;
        int32_t d;
        cnode *c;
        top--;
        j = t->stack[top];
        d = t->stack_d[top];
        if (t->canon[j] >= 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu]: node %d is reached twice (not a tree)",
                        ti, (int)j);
        if (d > CH_FOREST_MAX_DEPTH)
            return fail(err, CH_EMODEL, TREES_PATH "[%zu]: deeper than %d levels", ti,
                        CH_FOREST_MAX_DEPTH);
        if ((size_t)d > depth)
            depth = (size_t)d;
        t->canon[j] = (int32_t)(f->n_cn - base);
        c = &f->cn[f->n_cn++];
        c->left = t->l[j]; /* JSON indices for now */
        c->right = t->r[j];
        c->feat = t->feat[j];
        c->thr = t->thr[j];
        c->cover = t->cover[j];
        c->dl = t->dl[j];
        if (t->l[j] >= 0) {
            if (!(t->cover[j] > 0))
                return fail(err, CH_EFORMAT,
                            TREES_PATH "[%zu].sum_hessian[%d]: a split node "
                                       "needs a positive cover",
                            ti, (int)j);
            if (top + 2 > n)
                return fail(err, CH_EFORMAT, TREES_PATH "[%zu]: not a tree", ti);
            t->stack[top] = t->r[j];
            t->stack_d[top++] = d + 1;
            t->stack[top] = t->l[j];
            t->stack_d[top++] = d + 1;
        }
    }
    ts->c_off = (uint32_t)base;
    ts->c_n = (uint32_t)(f->n_cn - base);
    ts->depth = (uint16_t)depth;
    for (size_t k = base; k < f->n_cn; k++) {
        cnode *c = &f->cn[k];
        if (c->left >= 0) {
            c->left = (int32_t)base + t->canon[c->left];
            c->right = (int32_t)base + t->canon[c->right];
        }
    }
    return CH_OK;
}

/* Where split 'c' reads its feature in the doubled row. */
static uint32_t row_index(const ch_forest *f, const cnode *c)
{
    return c->feat + (c->dl ? 0u : (uint32_t)f->n_features);
}

/* Lays tree 'ti' out breadth-first in f->pn. */
static void tree_predict_layout(ch_forest *f, size_t ti, load_tmp *t)
{
    tree_info *ts = &f->trees[ti];
    uint32_t base = (uint32_t)f->n_pn;
    uint32_t head = 0;
    uint32_t tail = 1;

    t->queue[0] = (int32_t)ts->c_off;
    while (head < tail) {
        const cnode *c = &f->cn[t->queue[head]];
        pnode *p = &f->pn[base + head];
        if (c->left < 0) {
            p->thr = NAN;
            p->fx = 0;
            p->left = base + head;
            f->pleaf[base + head] = c->thr;
        } else {
            p->thr = c->thr;
            p->fx = row_index(f, c);
            p->left = base + tail;
            f->pleaf[base + head] = 0.0f;
            t->queue[tail++] = c->left;
            t->queue[tail++] = c->right;
        }
        head++;
    }
    ts->p_root = base;
    f->n_pn += tail;
}

/* Kinds of canonical nodes in the SHAP layout. */
enum {
    K_LEAF = 0,    /* a leaf (folded into its parent's record) */
    K_INNER = 1,   /* a split with at least one split child: inode */
    K_TWIG = 2,    /* a split whose children are both plain bottom splits: tnode */
    K_BOTTOM = 3,  /* a split whose children are both leaves: bnode */
    K_TWIG_KID = 4 /* a bottom split inside a twig (no record of its own) */
};

/* State of the SHAP layout of one tree. t->lidx holds, per canonical node
 * of the tree, its slot (-1 for leaves and twig children); t->kind its
 * kind; t->rep whether its feature splits above it. */
typedef struct sh_walk {
    ch_forest *f;
    load_tmp *t;
    const tree_info *ts;
    uint32_t ni;     /* split slots: inner + twig + bottom */
    uint32_t n_lk;   /* leaf children of inner nodes so far (slots from ni on) */
    uint32_t n_in;   /* inner slots */
    uint32_t n_tw;   /* twig slots */
    size_t n_dist;   /* distinct features on the current path */
    size_t max_dist; /* most distinct features on a path */
    double expect;   /* sum of leaf value x merged cover fractions */
    int classic;     /* 1: the fast kernel cannot do this tree */
    size_t n_repeat; /* split nodes on a repeated feature */
} sh_walk;

static int is_leaf(const ch_forest *f, int32_t c)
{
    return f->cn[c].left < 0;
}

/* Tree-local index of canonical node 'c'. */
static uint32_t loc(const sh_walk *w, int32_t c)
{
    return (uint32_t)(c - (int32_t)w->ts->c_off);
}

/* Marks in t->rep the splits below 'c' (inclusive) whose feature splits
 * above them; t->last_edge serves as a per-feature "on the path" mark. */
static void sh_mark_repeats(sh_walk *w, int32_t c)
{
    const cnode *nd = &w->f->cn[c];
    int32_t was = w->t->last_edge[nd->feat];
    if (nd->left < 0)
        return;
    w->t->rep[loc(w, c)] = (uint8_t)(was >= 0);
    w->t->last_edge[nd->feat] = 0;
    sh_mark_repeats(w, nd->left);
    sh_mark_repeats(w, nd->right);
    w->t->last_edge[nd->feat] = was;
}

/* Adds leaf value 'v' times the product of the merged cover fractions of
 * the path's distinct features: its share of the tree's expected value.
 * t->last_edge holds canonical edges (2 * local node + side) here. */
static void sh_leaf(sh_walk *w, float v)
{
    double p = 1.0;
    for (size_t k = 0; k < w->n_dist; k++)
        p *= (double)w->t->ea[w->t->last_edge[w->t->distinct[k]]];
    w->expect += (double)v * p;
    if (w->n_dist > w->max_dist)
        w->max_dist = w->n_dist;
}

/* The slot-based edge ('pe') of canonical edge 'e' of an inner node. */
static uint32_t slot_edge(const sh_walk *w, int32_t e)
{
    return 2u * (uint32_t)w->t->lidx[e >> 1] + (uint32_t)(e & 1);
}

/* Slot of child 'c' of an inner node; a leaf gets the next leaf slot and
 * an lkid record. */
static uint32_t child_slot(sh_walk *w, int32_t c)
{
    lkid *k;
    if (!is_leaf(w->f, c))
        return (uint32_t)w->t->lidx[loc(w, c)];
    k = &w->f->lk[w->ts->lk_off + w->n_lk];
    k->v = (double)w->f->cn[c].thr;
    k->slot = w->ni + w->n_lk++;
    return k->slot;
}

/*
 * Visits canonical split node 'c': fills its record (inode, tnode or
 * bnode, at its slot; a twig child's values go into its parent's tnode)
 * and recurses into split children (depth is bounded by
 * CH_FOREST_MAX_DEPTH). t->last_edge holds, per feature, the canonical
 * edge below the nearest split on it along the path, and t->ea the merged
 * cover fraction of every canonical edge seen.
 */
static void sh_visit(sh_walk *w, int32_t c)
{
    ch_forest *f = w->f;
    load_tmp *t = w->t;
    const cnode *nd = &f->cn[c];
    uint32_t l = loc(w, c);
    int32_t kids[2] = {nd->left, nd->right};
    int32_t pe = t->last_edge[nd->feat];
    int rep = t->rep[l];
    float zprev = rep ? t->ea[pe] : 1.0f;
    uint32_t pe_slot = rep ? slot_edge(w, pe) : 2u * w->ni;
    uint32_t slot = (uint32_t)t->lidx[l];
    float a[2];

    for (int side = 0; side < 2; side++) {
        /* XGBoost: float cover fraction, times the incoming fraction in float. */
        float z = f->cn[kids[side]].cover / nd->cover;
        a[side] = rep ? z * zprev : z;
        t->ea[2 * l + (uint32_t)side] = a[side];
    }
    if (rep) {
        w->n_repeat++;
        if (zprev == 0.0f)
            w->classic = 1; /* the previous factor cannot be divided out */
    } else {
        t->distinct[w->n_dist++] = nd->feat;
    }
    switch (t->kind[l]) {
    case K_INNER: {
        inode *s = &f->in[w->ts->in_off + slot];
        t->zp_in[w->ts->in_off + slot] = zprev;
        s->rcp = 0;
        s->feat = nd->feat;
        s->thr = nd->thr;
        s->fx = row_index(f, nd);
        s->pe = pe_slot;
        for (int side = 0; side < 2; side++) {
            s->a[side] = (double)a[side];
            s->child[side] = child_slot(w, kids[side]);
        }
        break;
    }
    case K_TWIG: {
        tnode *s = &f->tw[w->ts->tw_off + slot - w->n_in];
        s->a[0] = (double)a[0];
        s->a[1] = (double)a[1];
        s->slot = slot;
        s->feat = nd->feat;
        s->fx = row_index(f, nd);
        s->thr = nd->thr;
        break;
    }
    case K_BOTTOM:
    case K_TWIG_KID: {
        bnode tmp;
        double v0 = (double)f->cn[kids[0]].thr;
        double v1 = (double)f->cn[kids[1]].thr;
        tmp.s = (double)a[0] * v0 + (double)a[1] * v1;
        tmp.dv[0] = v0 - tmp.s;
        tmp.dv[1] = v1 - tmp.s;
        tmp.rcp = 0;
        tmp.feat = nd->feat;
        tmp.thr = nd->thr;
        tmp.slot = slot;
        tmp.fx = row_index(f, nd);
        tmp.pe = pe_slot;
        tmp.rep = (uint32_t)rep;
        if (t->kind[l] == K_BOTTOM) {
            f->bn[w->ts->bn_off + slot - w->n_in - w->n_tw] = tmp;
            t->zp_bn[w->ts->bn_off + slot - w->n_in - w->n_tw] = zprev;
        } else {
            t->kid[l] = tmp; /* its twig copies it in */
        }
        break;
    }
    default:
        break;
    }
    for (int side = 0; side < 2; side++) {
        int32_t e = (int32_t)(2 * l + (uint32_t)side);
        t->last_edge[nd->feat] = e;
        if (is_leaf(f, kids[side]))
            sh_leaf(w, f->cn[kids[side]].thr);
        else
            sh_visit(w, kids[side]);
    }
    t->last_edge[nd->feat] = pe;
    if (!rep)
        w->n_dist--;
    if (t->kind[l] == K_TWIG) {
        /* Both children are done: copy them in. */
        tnode *s = &f->tw[w->ts->tw_off + slot - w->n_in];
        double cs[2];
        for (int side = 0; side < 2; side++) {
            const bnode *k = &t->kid[loc(w, kids[side])];
            cs[side] = k->s;
            s->cd[side][0] = k->dv[0];
            s->cd[side][1] = k->dv[1];
            s->cfeat[side] = k->feat;
            s->cfx[side] = k->fx;
            s->cthr[side] = k->thr;
        }
        s->sigma = s->a[0] * cs[0] + s->a[1] * cs[1];
        s->al[0] = cs[0] - s->sigma;
        s->al[1] = cs[1] - s->sigma;
    }
}

/* Turns the slots and features of tree 'ts' records into the byte
 * offsets the kernel uses (see inode). */
static void tree_shap_offsets(ch_forest *f, const tree_info *ts)
{
    size_t vec = (size_t)(ts->nv > 0 ? ts->nv : 1) * sizeof(v4d);
    for (uint32_t s = 0; s < ts->n_in; s++) {
        inode *nd = &f->in[ts->in_off + s];
        nd->child[0] = (uint32_t)(nd->child[0] * vec);
        nd->child[1] = (uint32_t)(nd->child[1] * vec);
        nd->feat = (uint32_t)(nd->feat * sizeof(v4d));
    }
    for (uint32_t s = 0; s < ts->n_tw; s++) {
        tnode *nd = &f->tw[ts->tw_off + s];
        nd->slot = (uint32_t)(nd->slot * vec);
        nd->feat = (uint32_t)(nd->feat * sizeof(v4d));
        nd->cfeat[0] = (uint32_t)(nd->cfeat[0] * sizeof(v4d));
        nd->cfeat[1] = (uint32_t)(nd->cfeat[1] * sizeof(v4d));
    }
    for (uint32_t b = 0; b < ts->n_bot; b++) {
        bnode *nd = &f->bn[ts->bn_off + b];
        nd->slot = (uint32_t)(nd->slot * vec);
        nd->feat = (uint32_t)(nd->feat * sizeof(v4d));
    }
    for (uint32_t j = 0; j < ts->n_lk; j++) {
        lkid *k = &f->lk[ts->lk_off + j];
        k->slot = (uint32_t)(k->slot * vec);
    }
}

/*
 * Builds the SHAP records of tree 'ti' after those already in f->in,
 * f->tw and f->bn. Slots: inner nodes breadth-first (consecutive nodes of
 * a pass are then mostly independent -- siblings, cousins -- where in
 * depth-first order each would wait for the one before it), then twigs,
 * then bottom nodes on a new feature, then the other bottom nodes.
 */
static void tree_shap_layout(ch_forest *f, size_t ti, load_tmp *t)
{
    tree_info *ts = &f->trees[ti];
    const cnode *cn = f->cn + ts->c_off;
    sh_walk w;
    uint32_t n_in = 0;
    uint32_t n_tw = 0;
    uint32_t n_plain = 0;
    uint32_t n_bot = 0;
    uint32_t head = 0;
    uint32_t tail = 1;

    memset(&w, 0, sizeof w);
    w.f = f;
    w.t = t;
    w.ts = ts;
    ts->in_off = (uint32_t)f->n_in;
    ts->tw_off = (uint32_t)f->n_tw;
    ts->bn_off = (uint32_t)f->n_bn;
    ts->lk_off = (uint32_t)f->n_lk;
    ts->nv = 1;
    if (cn[0].left < 0) {
        ts->expect = (double)cn[0].thr;
        return;
    }
    /* Kinds. */
    sh_mark_repeats(&w, (int32_t)ts->c_off);
    for (uint32_t j = 0; j < ts->c_n; j++) {
        const cnode *c = &cn[j];
        t->lidx[j] = -1;
        t->kind[j] = K_LEAF;
        if (c->left < 0)
            continue;
        t->kind[j] = is_leaf(f, c->left) && is_leaf(f, c->right) ? K_BOTTOM : K_INNER;
    }
    for (uint32_t j = 0; j < ts->c_n; j++) {
        const cnode *c = &cn[j];
        uint32_t l;
        uint32_t r;
        if (t->kind[j] != K_INNER || t->rep[j])
            continue;
        l = (uint32_t)c->left - ts->c_off;
        r = (uint32_t)c->right - ts->c_off;
        if (t->kind[l] == K_BOTTOM && t->kind[r] == K_BOTTOM && !t->rep[l] && !t->rep[r]) {
            t->kind[j] = K_TWIG;
            t->kind[l] = K_TWIG_KID;
            t->kind[r] = K_TWIG_KID;
        }
    }
    /* Slots: count, then number in breadth-first order. */
    for (uint32_t j = 0; j < ts->c_n; j++) {
        n_in += t->kind[j] == K_INNER;
        n_tw += t->kind[j] == K_TWIG;
        n_plain += t->kind[j] == K_BOTTOM && !t->rep[j];
        n_bot += t->kind[j] == K_BOTTOM;
    }
    {
        uint32_t next_in = 0;
        uint32_t next_tw = n_in;
        uint32_t next_plain = n_in + n_tw;
        uint32_t next_rep = n_in + n_tw + n_plain;
        t->queue[0] = 0;
        while (head < tail) {
            uint32_t j = (uint32_t)t->queue[head++];
            switch (t->kind[j]) {
            case K_INNER:
                t->lidx[j] = (int32_t)next_in++;
                break;
            case K_TWIG:
                t->lidx[j] = (int32_t)next_tw++;
                break;
            case K_BOTTOM:
                t->lidx[j] = (int32_t)(t->rep[j] ? next_rep++ : next_plain++);
                break;
            default:
                break;
            }
            if (cn[j].left >= 0) {
                t->queue[tail++] = (int32_t)((uint32_t)cn[j].left - ts->c_off);
                t->queue[tail++] = (int32_t)((uint32_t)cn[j].right - ts->c_off);
            }
        }
    }
    w.n_in = n_in;
    w.n_tw = n_tw;
    w.ni = n_in + n_tw + n_bot;
    ts->n_in = n_in;
    ts->n_tw = n_tw;
    ts->n_bot = n_bot;
    ts->n_bot_plain = n_plain;
    sh_visit(&w, (int32_t)ts->c_off);
    ts->n_lk = w.n_lk;
    f->n_in += n_in;
    f->n_tw += n_tw;
    f->n_bn += n_bot;
    f->n_lk += w.n_lk;
    ts->expect = w.expect;
    /* m = 4 nv points are exact for paths of up to 2m = 8 nv distinct features. */
    ts->nv = (uint8_t)((w.max_dist + 7) / 8 > 0 ? (w.max_dist + 7) / 8 : 1);
    /* Past NV_MAX vectors, or past 32-bit byte offsets into the scratch. */
    if (w.max_dist > 8 * NV_MAX ||
        (uint64_t)(w.ni + w.n_lk + 1) * ts->nv * sizeof(v4d) > (uint64_t)UINT32_MAX)
        w.classic = 1;
    ts->classic = (uint8_t)w.classic;
    f->n_repeat += w.n_repeat;
    if (w.classic) {
        ts->nv = 0;
        f->n_classic++;
        if ((size_t)ts->depth + 1 > f->classic_depth)
            f->classic_depth = (size_t)ts->depth + 1;
    } else {
        if (w.ni + w.n_lk > f->max_slots)
            f->max_slots = w.ni + w.n_lk;
        if (ts->nv > f->max_nv)
            f->max_nv = ts->nv;
    }
    tree_shap_offsets(f, ts);
}

/* Gauss-Legendre nodes and weights on [0, 1] for 'm' points, by Newton's
 * method on the Legendre polynomial P_m (Numerical Recipes' gauleg). */
static void gauss_legendre(int m, double *t, double *w)
{
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < m; i++) {
        double z = cos(pi * ((double)i + 0.75) / ((double)m + 0.5));
        double dp = 1.0;
        for (int it = 0; it < 100; it++) {
            double p1 = 1.0;
            double p2 = 0.0;
            double z1;
            for (int j = 1; j <= m; j++) {
                double p3 = p2;
                p2 = p1;
                p1 = ((2.0 * j - 1.0) * z * p2 - (j - 1.0) * p3) / j;
            }
            dp = m * (z * p1 - p2) / (z * z - 1.0);
            z1 = z;
            z = z1 - p1 / dp;
            if (fabs(z - z1) <= 1e-16)
                break;
        }
        {
            double p1 = 1.0;
            double p2 = 0.0;
            for (int j = 1; j <= m; j++) {
                double p3 = p2;
                p2 = p1;
                p1 = ((2.0 * j - 1.0) * z * p2 - (j - 1.0) * p3) / j;
            }
            dp = m * (z * p1 - p2) / (z * z - 1.0);
        }
        t[i] = 0.5 * (1.0 - z);
        w[i] = 1.0 / ((1.0 - z * z) * dp * dp);
    }
}

/* 'n' doubles rounded up to 128 bytes, which keeps the next table aligned
 * for any vector. */
static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* Doubles taken by a moff table for 'r' rows in vectors of 'lw' lanes. */
static size_t moff_doubles(size_t r, size_t lw)
{
    return round16((((size_t)1 << r) * (r * 4 / lw) + 7) / 8);
}

/* Builds the kernels' constant vectors (lane_tabs). */
static ch_err lanes_init(ch_forest *f, ch_error *err)
{
    size_t n_quad = quad_off(NV_MAX + 1);
    size_t n = 0;
    double t[4 * NV_MAX];
    double w[4 * NV_MAX];
    double *p;

    for (size_t lw = 2; lw <= 8; lw *= 2) {
        size_t rows = lw < 4 ? 1 : lw / 4; /* rows a mask of msk[] covers */
        n += round16(n_quad * (lw < 4 ? 4 : lw)) + round16(((size_t)1 << rows) * lw);
        for (size_t r = 1; r <= ROWS_MAX; r *= 2)
            n += moff_doubles(r, lw);
    }
    p = alloc_aligned(n * sizeof *p, &f->lanes_mem);
    if (p == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t lw = 2; lw <= 8; lw *= 2) {
        size_t gl = lw < 4 ? 4 : lw; /* doubles per group */
        size_t rows = lw < 4 ? 1 : lw / 4;
        f->lanes.quad[WIDX(lw)] = (const char *)p;
        for (int nv = 1; nv <= NV_MAX; nv++) {
            double *at = p + quad_off(nv) * gl;
            size_t unv = (size_t)nv;
            gauss_legendre(4 * nv, t, w);
            for (size_t v = 0; v < unv; v++)
                for (size_t l = 0; l < gl; l++) {
                    size_t i = 4 * v + l % 4;
                    at[v * gl + l] = t[i];
                    at[(unv + v) * gl + l] = w[i];
                    at[(2 * unv + v) * gl + l] = 1.0 - t[i];
                }
        }
        p += round16(n_quad * gl);
        f->lanes.msk[WIDX(lw)] = (const char *)p;
        for (size_t m = 0; m < ((size_t)1 << rows); m++)
            for (size_t l = 0; l < lw; l++)
                ((uint64_t *)(void *)p)[m * lw + l] = ((m >> (l / 4)) & 1u) ? ~(uint64_t)0 : 0;
        p += round16(((size_t)1 << rows) * lw);
        for (size_t r = 1; r <= ROWS_MAX; r *= 2) {
            uint8_t *mo = (uint8_t *)p;
            size_t nc = r * 4 / lw; /* vectors per group of R rows */
            f->lanes.moff[ROWS_LOG2(r)][WIDX(lw)] = nc > 0 ? mo : NULL;
            for (size_t m = 0; m < ((size_t)1 << r) && nc > 0; m++)
                for (size_t c = 0; c < nc; c++) {
                    /* Vector c holds rows c rows .. (c + 1) rows - 1, or
                     * half of row c / 2. */
                    size_t bits =
                        lw < 4 ? (m >> (c / 2)) & 1u : (m >> (rows * c)) & ((1u << rows) - 1u);
                    mo[m * nc + c] = (uint8_t)(bits * lw * 8);
                }
            p += moff_doubles(r, lw);
        }
    }
    return CH_OK;
}

/*
 * Tabulates, for every split on a repeated feature of a fast tree, the
 * reciprocals of the factor the kernel divides out, Z_prev + t (O_prev -
 * Z_prev), at the tree's quadrature points, for O_prev = 0 and 1; Z_prev
 * is 'zp_in' or 'zp_bn' (by node, as sh_visit() left them). A record is
 * 1 + 2 nv vectors: {Z_prev, 1 - Z_prev, -Z_prev, 0}, then nv vectors for
 * O_prev = 0 and nv for O_prev = 1; the node's 'rcp' is its first vector
 * (record 0 is unused, so that 'rcp' 0 means none). Z_prev > 0
 * (trees with a zero factor are classic), so each factor is positive.
 * Errors: CH_EMODEL (more records than 32-bit indices reach), CH_ENOMEM.
 */
static ch_err rcp_init(ch_forest *f, const float *zp_in, const float *zp_bn, ch_error *err)
{
    size_t n = 1;
    v4d *rc = NULL;

    for (int pass = 0; pass < 2; pass++) {
        size_t at = 1; /* record 0 is unused: 'rcp' 0 means none */
        for (size_t ti = 0; ti < f->n_trees; ti++) {
            const tree_info *ts = &f->trees[ti];
            uint32_t none = 2 * (ts->n_in + ts->n_tw + ts->n_bot);
            size_t unv = ts->nv;
            const double *tq =
                (const double *)(const void *)f->lanes.quad[0] + quad_off(ts->nv) * 4;
            if (ts->classic)
                continue;
            for (uint32_t i = 0; i < ts->n_in + ts->n_bot; i++) {
                int is_in = i < ts->n_in;
                size_t g = is_in ? ts->in_off + i : ts->bn_off + (i - ts->n_in);
                uint32_t pe = is_in ? f->in[g].pe : f->bn[g].pe;
                double zp;
                if (pe == none || (!is_in && !f->bn[g].rep))
                    continue;
                if (pass == 1) {
                    zp = (double)(is_in ? zp_in[g] : zp_bn[g]);
                    rc[at] = (v4d){zp, 1.0 - zp, -zp, 0.0};
                    for (size_t v = 0; v < unv; v++)
                        for (int o = 0; o < 2; o++)
                            for (size_t l = 0; l < 4; l++) {
                                double c = (double)o - zp;
                                rc[at + 1 + (size_t)o * unv + v][l] =
                                    1.0 / (zp + tq[4 * v + l] * c);
                            }
                    if (is_in)
                        f->in[g].rcp = (uint32_t)at;
                    else
                        f->bn[g].rcp = (uint32_t)at;
                }
                at += 1 + 2 * unv;
            }
        }
        if (pass == 0) {
            n = at;
            if (n > UINT32_MAX)
                return fail(err, CH_EMODEL, "too many splits on repeated features");
            rc = alloc_aligned(n * sizeof *rc, &f->rcp_mem);
            if (rc == NULL)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
            f->rcp = rc;
            f->n_rcp = n;
        }
    }
    return CH_OK;
}

static int cpu_isa(void);
static void pick_kernels(ch_forest *f, int isa);

/* Reads learner.learner_model_param and the objective; sets base margin
 * and the feature count. */
static ch_err read_learner(const ch_json *learner, size_t n_features, ch_forest *f, ch_error *err)
{
    const ch_json *obj;
    const ch_json *mp;
    const ch_json *v;
    const char *name;
    double d;
    float bs;
    ch_err rc;

    if ((rc = need(learner, "objective", CH_JSON_OBJECT, "learner", &obj, err)) != CH_OK)
        return rc;
    name = ch_json_str(ch_json_get(obj, "name"), NULL);
    if (name == NULL)
        return fail(err, CH_EFORMAT, "learner.objective.name: missing or not a string");
    if (strcmp(name, "binary:logistic") != 0)
        return fail(err, CH_EMODEL, "objective \"%.64s\" is not supported (only binary:logistic)",
                    name);
    if ((rc = need(learner, "learner_model_param", CH_JSON_OBJECT, "learner", &mp, err)) != CH_OK)
        return rc;
    v = ch_json_get(mp, "num_class");
    if (v != NULL && (param_number(v, &d) != 0 || d > 1))
        return fail(err, CH_EMODEL,
                    "learner.learner_model_param.num_class: only binary models "
                    "are supported");
    v = ch_json_get(mp, "num_target");
    if (v != NULL && (param_number(v, &d) != 0 || d > 1))
        return fail(err, CH_EMODEL,
                    "learner.learner_model_param.num_target: only one target is "
                    "supported");
    if (param_number(ch_json_get(mp, "num_feature"), &d) != 0 || d < 1 || d != floor(d) || d > 1e12)
        return fail(err, CH_EFORMAT,
                    "learner.learner_model_param.num_feature: missing or not a "
                    "positive whole number");
    if (d > (double)CH_FOREST_MAX_FEATURES)
        return fail(err, CH_EMODEL, "%.0f features, more than %lu", d,
                    (unsigned long)CH_FOREST_MAX_FEATURES);
    if (n_features != 0 && (double)n_features != d)
        return fail(err, CH_EMODEL, "model expects %.0f features, got %zu", d, n_features);
    f->n_features = (size_t)d;
    if (param_number(ch_json_get(mp, "base_score"), &d) != 0)
        return fail(err, CH_EFORMAT,
                    "learner.learner_model_param.base_score: missing or not a "
                    "number");
    bs = (float)d;
    if (!(bs > 0.0f && bs < 1.0f))
        return fail(err, CH_EMODEL,
                    "learner.learner_model_param.base_score: %g is not a "
                    "probability in (0, 1)",
                    d);
    /* XGBoost's LogisticRegression::ProbToMargin, in float. */
    f->base_f = -logf(1.0f / bs - 1.0f);
    return CH_OK;
}

/* Reads learner.gradient_booster down to its trees array. */
static ch_err read_booster(const ch_json *learner, const ch_json **trees, ch_error *err)
{
    const ch_json *gb;
    const ch_json *model;
    const ch_json *info;
    const ch_json *gp;
    const char *name;
    size_t n;
    ch_err rc;

    if ((rc = need(learner, "gradient_booster", CH_JSON_OBJECT, "learner", &gb, err)) != CH_OK)
        return rc;
    name = ch_json_str(ch_json_get(gb, "name"), NULL);
    if (name == NULL)
        return fail(err, CH_EFORMAT, "learner.gradient_booster.name: missing or not a string");
    if (strcmp(name, "gbtree") != 0)
        return fail(err, CH_EMODEL, "booster \"%.64s\" is not supported (only gbtree)", name);
    if ((rc = need(gb, "model", CH_JSON_OBJECT, "learner.gradient_booster", &model, err)) != CH_OK)
        return rc;
    if ((rc = need(model, "trees", CH_JSON_ARRAY, "learner.gradient_booster.model", trees, err)) !=
        CH_OK)
        return rc;
    n = ch_json_len(*trees);
    gp = ch_json_get(model, "gbtree_model_param");
    if (gp != NULL) {
        double d;
        const ch_json *nt = ch_json_get(gp, "num_trees");
        if (nt != NULL && (param_number(nt, &d) != 0 || d != (double)n))
            return fail(err, CH_EFORMAT,
                        "learner.gradient_booster.model.gbtree_model_param."
                        "num_trees: does not match the %zu trees",
                        n);
    }
    info = ch_json_get(model, "tree_info");
    if (info != NULL) {
        if (ch_json_typeof(info) != CH_JSON_ARRAY || ch_json_len(info) != n)
            return fail(err, CH_EFORMAT,
                        "learner.gradient_booster.model.tree_info: expected "
                        "an array of %zu entries",
                        n);
        for (size_t i = 0; i < n; i++) {
            long g;
            if (arr_int(info, i, 0, 0, &g) != 0)
                return fail(err, CH_EMODEL,
                            "learner.gradient_booster.model.tree_info[%zu]: "
                            "output group is not 0 (multi-class models are not supported)",
                            i);
        }
    }
    if (n > UINT32_MAX / 2)
        return fail(err, CH_EMODEL, "%zu trees is too many", n);
    return CH_OK;
}

CH_API ch_err ch_forest_from_xgb_json(const ch_json *model, size_t n_features, ch_forest **out,
                                      ch_error *err)
{
    const ch_json *learner;
    const ch_json *trees;
    ch_forest *f = NULL;
    load_tmp t;
    size_t n_trees;
    size_t total = 0;
    size_t max_n = 1;
    size_t n_split = 0;
    size_t n_bottom = 0;
    ch_err rc;

    memset(&t, 0, sizeof t);
    if (model == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL, "xgboost model: no model");
    if (ch_json_typeof(model) != CH_JSON_OBJECT)
        return fail(err, CH_EFORMAT, "expected an object, got %s",
                    ch_json_type_name(ch_json_typeof(model)));
    if ((rc = need(model, "learner", CH_JSON_OBJECT, "", &learner, err)) != CH_OK)
        return rc;
    f = ch_calloc(1, sizeof *f);
    if (f == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if ((rc = read_learner(learner, n_features, f, err)) != CH_OK)
        goto done;
    if ((rc = read_booster(learner, &trees, err)) != CH_OK)
        goto done;
    n_trees = ch_json_len(trees);

    /* Sizes first, so that every array is allocated once. */
    for (size_t i = 0; i < n_trees; i++) {
        tree_arrays a;
        size_t n;
        if ((rc = tree_arrays_get(ch_json_at(trees, i), i, &a, &n, err)) != CH_OK)
            goto done;
        total += n;
        if (n > max_n)
            max_n = n;
        if (total > MAX_TOTAL_NODES) {
            rc = fail(err, CH_EMODEL, "more than %zu nodes in all", MAX_TOTAL_NODES);
            goto done;
        }
    }
    f->n_trees = n_trees;
    f->trees = ch_calloc(n_trees + 1, sizeof *f->trees);
    f->cn = ch_malloc_array(total + 1, sizeof *f->cn);
    if (f->trees == NULL || f->cn == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = tmp_alloc(&t, max_n, f->n_features, err)) != CH_OK)
        goto done;
    for (size_t i = 0; i < n_trees; i++) {
        tree_arrays a;
        size_t n;
        if ((rc = tree_arrays_get(ch_json_at(trees, i), i, &a, &n, err)) != CH_OK)
            goto done;
        if ((rc = tree_parse(&a, n, i, f->n_features, &t, err)) != CH_OK)
            goto done;
        if ((rc = tree_canon(f, i, n, &t, err)) != CH_OK)
            goto done;
        if (f->trees[i].depth > f->max_depth)
            f->max_depth = f->trees[i].depth;
    }
    for (size_t k = 0; k < f->n_cn; k++) {
        const cnode *c = &f->cn[k];
        if (c->left < 0)
            continue;
        n_split++;
        n_bottom += is_leaf(f, c->left) && is_leaf(f, c->right);
    }

    /* The predict and SHAP layouts. */
    f->n_groups = (n_trees + GROUP - 1) / GROUP;
    f->pn = ch_malloc_array(f->n_cn + 1, sizeof *f->pn);
    f->pleaf = ch_malloc_array(f->n_cn + 1, sizeof *f->pleaf);
    f->proot = ch_calloc(f->n_groups * GROUP + 1, sizeof *f->proot);
    f->gdepth = ch_calloc(f->n_groups + 1, sizeof *f->gdepth);
    f->in = ch_malloc_array(n_split - n_bottom + 1, sizeof *f->in);
    f->tw = ch_malloc_array(n_split - n_bottom + 1, sizeof *f->tw);
    f->bn = ch_malloc_array(n_bottom + 1, sizeof *f->bn);
    f->lk = ch_malloc_array(f->n_cn + 1, sizeof *f->lk);
    t.zp_in = ch_malloc_array(n_split - n_bottom + 1, sizeof *t.zp_in);
    t.zp_bn = ch_malloc_array(n_bottom + 1, sizeof *t.zp_bn);
    if (f->pn == NULL || f->pleaf == NULL || f->proot == NULL || f->gdepth == NULL ||
        f->in == NULL || f->tw == NULL || f->bn == NULL || f->lk == NULL || t.zp_in == NULL ||
        t.zp_bn == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    f->pn[0].thr = NAN;
    f->pn[0].fx = 0;
    f->pn[0].left = 0;
    f->pleaf[0] = 0.0f;
    f->n_pn = 1;
    f->bias = (double)f->base_f;
    for (size_t i = 0; i < n_trees; i++) {
        tree_predict_layout(f, i, &t);
        tree_shap_layout(f, i, &t);
        f->proot[i] = f->trees[i].p_root;
        if (f->trees[i].depth > f->gdepth[i / GROUP])
            f->gdepth[i / GROUP] = f->trees[i].depth;
        f->bias += f->trees[i].expect;
    }
    if ((rc = lanes_init(f, err)) != CH_OK)
        goto done;
    if ((rc = rcp_init(f, t.zp_in, t.zp_bn, err)) != CH_OK)
        goto done;
    pick_kernels(f, cpu_isa());
    *out = f;
    f = NULL;
done:
    tmp_free(&t);
    ch_forest_free(f);
    return rc;
}

CH_API void ch_forest_free(ch_forest *f)
{
    if (f == NULL)
        return;
    ch_free(f->trees);
    ch_free(f->cn);
    ch_free(f->pn);
    ch_free(f->pleaf);
    ch_free(f->proot);
    ch_free(f->gdepth);
    ch_free(f->in);
    ch_free(f->tw);
    ch_free(f->bn);
    ch_free(f->lk);
    ch_free(f->lanes_mem);
    ch_free(f->rcp_mem);
    ch_free(f);
}

CH_API size_t ch_forest_n_features(const ch_forest *f)
{
    return f->n_features;
}

CH_API size_t ch_forest_n_trees(const ch_forest *f)
{
    return f->n_trees;
}

/* ------------------------------------------------------------------------
 * Prediction
 * ------------------------------------------------------------------------ */

/* Rows up to this wide are doubled on the stack by ch_forest_predict();
 * wider ones are read in place, converting each value as it is used. */
#ifndef CH_FOREST_STACK_FEATURES
#define CH_FOREST_STACK_FEATURES 512
#endif

/* Fills 'xb' (2 'n' floats) with the doubled row of 'x' (see pnode). */
static void row_fill(float *xb, const double *x, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        float v = (float)x[j];
        int miss = v != v;
        xb[j] = miss ? -INFINITY : v;
        xb[n + j] = miss ? INFINITY : v;
    }
}

/* Element 'fx' of the doubled row: from 'xb' (elements 'stride' floats
 * apart) when 'wide' is 0, else made from 'x' ('n' wide) on the spot. */
static inline __attribute__((always_inline)) float
row_at(const float *xb, size_t stride, const double *x, size_t n, uint32_t fx, int wide)
{
    float v;
    if (!wide)
        return xb[fx * stride];
    v = (float)x[fx >= n ? fx - n : fx];
    if (v != v)
        v = fx >= n ? INFINITY : -INFINITY;
    return v;
}

/*
 * The margin of a row: XGBoost's float sum, base margin first, trees in
 * order, GROUP walks side by side (a leaf steps to itself). With 'dsum'
 * non-NULL, the same leaves are also summed in double there (for the bias
 * correction of ch_forest_shap()).
 */
static inline __attribute__((always_inline)) float
walk(const ch_forest *f, const float *xb, size_t stride, const double *x, int wide, double *dsum)
{
    const pnode *pn = f->pn;
    const float *leaf = f->pleaf;
    size_t n = f->n_features;
    float acc = f->base_f;
    double dacc = (double)f->base_f;
    for (size_t g = 0; g < f->n_groups; g++) {
        const uint32_t *r = f->proot + g * GROUP;
        uint32_t idx[GROUP];
        size_t k = f->n_trees - g * GROUP;
        for (size_t j = 0; j < GROUP; j++)
            idx[j] = r[j];
        for (unsigned s = f->gdepth[g]; s > 0; s--)
#pragma GCC unroll 32
            for (size_t j = 0; j < GROUP; j++) {
                const pnode *nd = &pn[idx[j]];
                idx[j] = nd->left + (uint32_t)(row_at(xb, stride, x, n, nd->fx, wide) >= nd->thr);
            }
        if (k > GROUP)
            k = GROUP;
        for (size_t j = 0; j < k; j++) {
            acc += leaf[idx[j]];
            if (dsum != NULL)
                dacc += (double)leaf[idx[j]];
        }
    }
    if (dsum != NULL)
        *dsum = dacc;
    return acc;
}

CH_API double ch_forest_predict(const ch_forest *f, const double *x)
{
    float xb[2 * CH_FOREST_STACK_FEATURES];
    if (f->n_features > CH_FOREST_STACK_FEATURES)
        return (double)walk(f, NULL, 1, x, 1, NULL);
    row_fill(xb, x, f->n_features);
    return (double)walk(f, xb, 1, x, 0, NULL);
}

typedef struct batch_job {
    const ch_forest *f;
    const double *x;
    size_t n_rows;
    double *out;
} batch_job;

static void *batch_run(void *arg)
{
    const batch_job *j = arg;
    size_t w = j->f->n_features;
    for (size_t i = 0; i < j->n_rows; i++)
        j->out[i] = ch_forest_predict(j->f, j->x + i * w);
    return NULL;
}

/*
 * Splits the rows into equal contiguous chunks, one per thread; the
 * calling thread takes the first. Each row is predicted by
 * ch_forest_predict(), so results do not depend on the thread count. A
 * thread that cannot be started leaves its chunk to the calling thread.
 */
CH_API ch_err ch_forest_predict_batch(const ch_forest *f, const double *x, size_t n_rows,
                                      double *out, int n_threads, ch_error *err)
{
    batch_job jobs[CH_FOREST_MAX_THREADS];
    pthread_t tid[CH_FOREST_MAX_THREADS];
    int started[CH_FOREST_MAX_THREADS];
    size_t n_jobs;
    size_t chunk;

    if (n_rows == 0)
        return CH_OK;
    if (f == NULL || x == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL, "forest: no model, input or output");
    n_jobs = n_threads > 1 ? (size_t)n_threads : 1;
    if (n_jobs > CH_FOREST_MAX_THREADS)
        n_jobs = CH_FOREST_MAX_THREADS;
    if (n_jobs > (n_rows + MIN_ROWS_PER_THREAD - 1) / MIN_ROWS_PER_THREAD)
        n_jobs = (n_rows + MIN_ROWS_PER_THREAD - 1) / MIN_ROWS_PER_THREAD;
    chunk = (n_rows + n_jobs - 1) / n_jobs;
    for (size_t k = 0; k < n_jobs; k++) {
        size_t lo = k * chunk;
        size_t hi = lo + chunk < n_rows ? lo + chunk : n_rows;
        jobs[k].f = f;
        jobs[k].x = x + lo * f->n_features;
        jobs[k].n_rows = hi > lo ? hi - lo : 0;
        jobs[k].out = out + lo;
        started[k] = 0;
    }
    for (size_t k = 1; k < n_jobs; k++)
        started[k] = pthread_create(&tid[k], NULL, batch_run, &jobs[k]) == 0;
    batch_run(&jobs[0]);
    for (size_t k = 1; k < n_jobs; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            batch_run(&jobs[k]);
    }
    return CH_OK;
}

/* ------------------------------------------------------------------------
 * TreeSHAP, fast kernel (see the comment at the top of the file)
 * ------------------------------------------------------------------------ */

/*
 * Adds the contributions of the tree in 'k' for R rows at once to k->acc
 * (4 lanes per feature and row, summed at the end). Every quantity below
 * is a polynomial in t carried as its values at the quadrature points:
 * 'nv' groups of 4 points, and per group 4 R lanes, row r in lanes
 * 4r..4r+3. The passes visit every node of the tree whatever the row, so
 * the rows share them -- the node records, the addressing, the loops --
 * and only the directions differ: they are bit masks over the rows, and
 * choices by row are bitwise selections under lane masks (see MASK()),
 * exact and branch-free. Each lane computes the same operations in the
 * same order whatever R is, so a row gets the same bits from every batch
 * size.
 *
 * With quadrature nodes t (tq), weights (wq) and 1 - t (uq), per slot s
 * of a split on feature j, with edges c to its children:
 *   oe[2s + c]  O' of edge c, one bit per row: the row satisfies every
 *               split on j down to child c (set for exactly one child,
 *               unless an earlier split on j already failed: then for
 *               neither)
 *   pex[s]      W(t) * product over the path's distinct features of
 *               Z + t (O - Z), j's factor excluded (a split on a repeated
 *               feature divides out the factor of j's earlier split)
 *   q[s]        sum over the leaves below s of value * their factors below
 *               s (relative to s's own factor for j)
 * Each split adds pex[s] * D to acc[j], where D (a polynomial in t, like
 * all of these) is its share of the leaves below it:
 *   D = sum over c of (O'_c - Z'_c) q_c  -  (O_prev - Z_prev) q[s]
 * with q_c the child's q (a leaf child's value, for which the leaf has a
 * slot of its own, see lkid), Z' the merged cover fractions, and the last
 * term, for a split on a repeated feature, moving the leaves below s out
 * of the share of j's earlier split (Z_prev, O_prev: j's factor there).
 * Dividing by that factor, Z_prev + t (O_prev - Z_prev), is a
 * multiplication by its reciprocal, tabulated at load for both values of
 * O_prev (see rcp_init()): a vector division takes 8 (256 bits) to 16
 * (512 bits) cycles of a divider there is one of, a multiplication half a
 * cycle. Five passes, each a straight loop: inner nodes top-down
 * (directions, O', pex of the children), twigs, bottom nodes on a new
 * feature, bottom nodes on a repeated one, inner nodes bottom-up (q, D).
 *
 * The body is a macro so that it can be instantiated for each vector type
 * (C has no templates, and a vector's width is part of its type):
 * SHAP_KERNEL(name, V, VI, LW, R) defines name() over every fast tree of
 * a forest for R rows in vectors V of LW doubles (VI: the integer vector
 * of the same size), NPART = 4 R / LW vectors per quadrature group: part c
 * of group v is vector v * NPART + c. A register holds two rows (AVX-512),
 * one (AVX2) or half of one (SSE2, the generic kernels); vectors wider
 * than a register are split into parts here rather than left to GCC,
 * which moves them through memory. Each instantiation is always inlined
 * into one function per instruction set, with 'nv' a constant where it is
 * 1. Helpers that take vectors are macros: a function taking a 512-bit
 * vector would change the ABI in the functions compiled without AVX-512.
 */

/* Unrolls the loop over the vectors of a row mask ('c' below): GCC leaves
 * it rolled otherwise, and the parts are independent work to interleave. */
#define UNROLL _Pragma("GCC unroll 16")

/* The lane mask (VI) of vector c for row mask 'm': all bits set in the
 * lanes of the rows of 'm' (in scope in SHAP_KERNEL's body: 'msk', the
 * masks of one vector's rows; 'moff', the byte offset into 'msk' for each
 * mask and vector, which saves the shifts of taking the vector's bits out
 * of 'm' (with one vector, 'm' is the index itself); the type lane_mask
 * and the count NPART of vectors). */
#define MASK(m, c)                                                                                 \
    (*(const lane_mask *)(const void *)(msk + (NPART == 1 ? (m) * sizeof(lane_mask)                \
                                                          : moff[(m)*NPART + (c)])))

/* The vector at byte offset 'off' of 'base' when vectors hold R rows (the
 * records store offsets for one row). */
#define AT(V, base, off, R) ((V *)(void *)((char *)(base) + (size_t)(off) * (R)))

/* Choices by lane mask 'm' (of type VI, all bits set in the lanes chosen):
 * VSEL gives 'a' in the lanes of the mask and 'b' elsewhere, VKEEP 'a' in
 * those lanes and 0 elsewhere, VKEEPN 'a' in the other lanes and 0 in
 * these, VOR2 'a' in the lanes of 'ma' and 'b' in those of 'mb'
 * (disjoint). */
#define VSEL(V, VI, m, a, b)      ((V)(((VI)(a) & (m)) | ((VI)(b) & ~(m))))
#define VKEEP(V, VI, m, a)        ((V)((VI)(a) & (m)))
#define VKEEPN(V, VI, m, a)       ((V)((VI)(a) & ~(m)))
#define VOR2(V, VI, a, ma, b, mb) ((V)(((VI)(a) & (ma)) | ((VI)(b) & (mb))))

/* A double in every lane; and vector c of a group of one row's 4 points
 * ('p' points to them) laid out for the rows: as they are, twice (two rows
 * per vector), or the half of the 4 that vector c holds (half a row per
 * vector). */
#define SPLAT_v2d(x)   ((v2d){(x), (x)})
#define SPLAT_v4d(x)   ((v4d){(x), (x), (x), (x)})
#define SPLAT_v8d(x)   ((v8d){(x), (x), (x), (x), (x), (x), (x), (x)})
#define ROWS_v2d(p, c) (*(const v2d *)(const void *)((const double *)(p) + 2 * ((c) % 2)))
#define ROWS_v4d(p, c) (*(p))
#define ROWS_v8d(p, c) __builtin_shufflevector(*(p), *(p), 0, 1, 2, 3, 0, 1, 2, 3)

/* Vector c of group v of the quadrature table 't' (TQ vectors per group,
 * in SHAP_KERNEL's body). */
#define TQV(t, v, c) ((t)[(v)*TQ + (c) % TQ])

/* Bit r set: row r's doubled-row value at 'fx' is >= 'thr' (goes right).
 * The rows are interleaved, R floats per element. Four at a time with
 * SSE (every x86-64 has it): a compare and a movemask instead of four
 * compares and shifts. */
static inline __attribute__((always_inline)) uint32_t row_dirs(const float *xf, uint32_t fx,
                                                               float thr, int R)
{
    uint32_t m = 0;
#if defined(__SSE__)
    if (R >= 4) {
        const float *p = xf + (size_t)fx * (size_t)R;
        __m128 t = _mm_set1_ps(thr);
        for (int h = 0; h < R / 4; h++)
            m |= (uint32_t)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 4 * h), t)) << (4 * h);
        return m;
    }
#endif
    for (int r = 0; r < R; r++)
        m |= (uint32_t)(xf[(size_t)fx * (size_t)R + (size_t)r] >= thr) << r;
    return m;
}

#define SHAP_KERNEL(NAME, V, VI, LW, R)                                                            \
    static inline __attribute__((always_inline)) void NAME##_tree(const kargs *k, int nv)          \
    {                                                                                              \
        typedef VI lane_mask;                                                                      \
        enum { NPART = (R)*4 / (LW), TQ = (LW) < 4 ? 4 / (LW) : 1 };                               \
        const inode *__restrict in = k->in;                                                        \
        const tnode *__restrict tw = k->tw;                                                        \
        const bnode *__restrict bn = k->bn;                                                        \
        const float *__restrict xf = k->xf;                                                        \
        const v4d *__restrict rcp = k->rcp;                                                        \
        const V *tq = (const V *)(const void *)k->tq;                                              \
        const V *uq = (const V *)(const void *)k->uq;                                              \
        const V *wq = (const V *)(const void *)k->wq;                                              \
        const char *msk = k->msk;                                                                  \
        const uint8_t *moff = k->moff;                                                             \
        V *__restrict pex = (V *)k->pex;                                                           \
        V *__restrict q = (V *)k->q;                                                               \
        uint8_t *__restrict oe = k->oe;                                                            \
        size_t unv = (size_t)nv;                                                                   \
        size_t w = unv * NPART; /* vectors per slot */                                             \
        uint32_t n_in = k->n_in;                                                                   \
        uint32_t ni = n_in + k->n_tw + k->n_bot;                                                   \
        uint32_t none = 2 * ni; /* the 'pe' of a split on a feature new to its path */             \
        uint32_t all = (1u << R) - 1u;                                                             \
                                                                                                   \
        for (size_t i = 0; i < w; i++)                                                             \
            pex[i] = TQV(wq, i / NPART, i % NPART);                                                \
        for (uint32_t j = 0; j < k->n_lk; j++) {                                                   \
            V *ql = AT(V, q, k->lk[j].slot, R);                                                    \
            for (size_t i = 0; i < w; i++)                                                         \
                ql[i] = SPLAT_##V(k->lk[j].v);                                                     \
        }                                                                                          \
        oe[none] = (uint8_t)all;                                                                   \
                                                                                                   \
        /* Inner nodes, top-down: directions, O' and pex of the children. */                       \
        for (uint32_t s = 0; s < n_in; s++) {                                                      \
            const inode *nd = &in[s];                                                              \
            uint32_t gr = row_dirs(xf, nd->fx, nd->thr, R);                                        \
            uint32_t op = oe[nd->pe];                                                              \
            uint32_t ol = op & ~gr;                                                                \
            uint32_t orr = op & gr;                                                                \
            V *ps = pex + s * w;                                                                   \
            V *p0 = AT(V, pex, nd->child[0], R);                                                   \
            V *p1 = AT(V, pex, nd->child[1], R);                                                   \
            double a0 = nd->a[0];                                                                  \
            double a1 = nd->a[1];                                                                  \
                                                                                                   \
            oe[2 * (size_t)s] = (uint8_t)ol;                                                       \
            oe[2 * (size_t)s + 1] = (uint8_t)orr;                                                  \
            /* Z' + t (O' - Z') = Z' (1 - t) + O' t. On a new feature O' is the                    \
             * direction (one mask); on a repeated one, first divide out the                       \
             * factor of its earlier split. */                                                     \
            if (nd->pe == none) {                                                                  \
                UNROLL                                                                             \
                for (size_t c = 0; c < NPART; c++) {                                               \
                    VI mg = MASK(gr, c);                                                           \
                    for (size_t v = 0; v < unv; v++) {                                             \
                        V p = ps[v * NPART + c];                                                   \
                        p0[v * NPART + c] =                                                        \
                            p * (a0 * TQV(uq, v, c) + VKEEPN(V, VI, mg, TQV(tq, v, c)));           \
                        p1[v * NPART + c] =                                                        \
                            p * (a1 * TQV(uq, v, c) + VKEEP(V, VI, mg, TQV(tq, v, c)));            \
                    }                                                                              \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            UNROLL                                                                                 \
            for (size_t c = 0; c < NPART; c++) {                                                   \
                const v4d *rr = rcp + nd->rcp;                                                     \
                VI m0 = MASK(ol, c);                                                               \
                VI m1 = MASK(orr, c);                                                              \
                VI mo = MASK(op, c);                                                               \
                for (size_t v = 0; v < unv; v++) {                                                 \
                    V p = ps[v * NPART + c] *                                                      \
                          VSEL(V, VI, mo, ROWS_##V(&rr[1 + unv + v], c), ROWS_##V(&rr[1 + v], c)); \
                    ps[v * NPART + c] = p;                                                         \
                    p0[v * NPART + c] =                                                            \
                        p * (a0 * TQV(uq, v, c) + VKEEP(V, VI, m0, TQV(tq, v, c)));                \
                    p1[v * NPART + c] =                                                            \
                        p * (a1 * TQV(uq, v, c) + VKEEP(V, VI, m1, TQV(tq, v, c)));                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
                                                                                                   \
        /* Twigs (see tnode). With h the side x takes at the twig, each child c                    \
         * has D_c = v_c[hot] - s_c (a constant) and q_c = s_c + t D_c; then at                    \
         * the twig S = sigma + t delta with delta = a0 D_0 + a1 D_1, its own                      \
         * D = q_h - S = alpha + t beta, and q = S + t D. */                                       \
        for (uint32_t tw_i = 0; tw_i < k->n_tw; tw_i++) {                                          \
            const tnode *nd = &tw[tw_i];                                                           \
            uint32_t h = row_dirs(xf, nd->fx, nd->thr, R);                                         \
            uint32_t g0 = row_dirs(xf, nd->cfx[0], nd->cthr[0], R);                                \
            uint32_t g1 = row_dirs(xf, nd->cfx[1], nd->cthr[1], R);                                \
            double a0 = nd->a[0];                                                                  \
            double a1 = nd->a[1];                                                                  \
            double sigma = nd->sigma;                                                              \
            const V *ps = AT(V, pex, nd->slot, R);                                                 \
            V *qs = AT(V, q, nd->slot, R);                                                         \
            V *ak = AT(V, k->acc, nd->feat, R);                                                    \
            V *k0 = AT(V, k->acc, nd->cfeat[0], R);                                                \
            V *k1 = AT(V, k->acc, nd->cfeat[1], R);                                                \
            UNROLL                                                                                 \
            for (size_t c = 0; c < NPART; c++) {                                                   \
                VI mh = MASK(h, c);                                                                \
                V d0 = VSEL(V, VI, MASK(g0, c), SPLAT_##V(nd->cd[0][1]), SPLAT_##V(nd->cd[0][0])); \
                V d1 = VSEL(V, VI, MASK(g1, c), SPLAT_##V(nd->cd[1][1]), SPLAT_##V(nd->cd[1][0])); \
                V delta = a0 * d0 + a1 * d1;                                                       \
                V alpha = VSEL(V, VI, mh, SPLAT_##V(nd->al[1]), SPLAT_##V(nd->al[0]));             \
                V beta = VSEL(V, VI, mh, d1, d0) - delta;                                          \
                for (size_t v = 0; v < unv; v++) {                                                 \
                    V p = ps[v * NPART + c];                                                       \
                    k0[c] += (p * (a0 * TQV(uq, v, c) + VKEEPN(V, VI, mh, TQV(tq, v, c)))) * d0;   \
                    k1[c] += (p * (a1 * TQV(uq, v, c) + VKEEP(V, VI, mh, TQV(tq, v, c)))) * d1;    \
                    ak[c] += p * (alpha + TQV(tq, v, c) * beta);                                   \
                    qs[v * NPART + c] =                                                            \
                        sigma + TQV(tq, v, c) * ((delta + alpha) + TQV(tq, v, c) * beta);          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
                                                                                                   \
        /* Bottom nodes on a feature new to their path: O' is 1 for the leaf x                     \
         * reaches, so D = v_hot - s, a constant, and q = s + t D. */                              \
        for (uint32_t b = 0; b < k->n_plain; b++) {                                                \
            const bnode *nd = &bn[b];                                                              \
            uint32_t gr = row_dirs(xf, nd->fx, nd->thr, R);                                        \
            double s = nd->s;                                                                      \
            V *qs = AT(V, q, nd->slot, R);                                                         \
            const V *ps = AT(V, pex, nd->slot, R);                                                 \
            V *ak = AT(V, k->acc, nd->feat, R);                                                    \
            UNROLL                                                                                 \
            for (size_t c = 0; c < NPART; c++) {                                                   \
                V d = VSEL(V, VI, MASK(gr, c), SPLAT_##V(nd->dv[1]), SPLAT_##V(nd->dv[0]));        \
                for (size_t v = 0; v < unv; v++) {                                                 \
                    qs[v * NPART + c] = s + TQV(tq, v, c) * d;                                     \
                    ak[c] += ps[v * NPART + c] * d;                                                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
                                                                                                   \
        /* Bottom nodes on a repeated feature. */                                                  \
        for (uint32_t b = k->n_plain; b < k->n_bot; b++) {                                         \
            const bnode *nd = &bn[b];                                                              \
            uint32_t gr = row_dirs(xf, nd->fx, nd->thr, R);                                        \
            uint32_t op = oe[nd->pe];                                                              \
            const v4d *rr = rcp + nd->rcp;                                                         \
            double s = nd->s;                                                                      \
            V *qs = AT(V, q, nd->slot, R);                                                         \
            const V *ps = AT(V, pex, nd->slot, R);                                                 \
            V *ak = AT(V, k->acc, nd->feat, R);                                                    \
            UNROLL                                                                                 \
            for (size_t c = 0; c < NPART; c++) {                                                   \
                VI mo = MASK(op, c);                                                               \
                /* O_prev - Z_prev, and D: the hot leaf's dv, or -s when O_prev = 0. */            \
                V cc = VSEL(V, VI, mo, SPLAT_##V(rr[0][1]), SPLAT_##V(rr[0][2]));                  \
                V dd = VSEL(V, VI, mo,                                                             \
                            VSEL(V, VI, MASK(gr, c), SPLAT_##V(nd->dv[1]), SPLAT_##V(nd->dv[0])),  \
                            SPLAT_##V(-s));                                                        \
                for (size_t v = 0; v < unv; v++) {                                                 \
                    V ri =                                                                         \
                        VSEL(V, VI, mo, ROWS_##V(&rr[1 + unv + v], c), ROWS_##V(&rr[1 + v], c));   \
                    V qq = (s + TQV(tq, v, c) * dd) * ri;                                          \
                    qs[v * NPART + c] = qq;                                                        \
                    ak[c] += (ps[v * NPART + c] * ri) * (dd - cc * qq);                            \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
                                                                                                   \
        /* Inner nodes, bottom-up. */                                                              \
        for (uint32_t s = n_in; s-- > 0;) {                                                        \
            const inode *nd = &in[s];                                                              \
            const V *q0 = AT(V, q, nd->child[0], R);                                               \
            const V *q1 = AT(V, q, nd->child[1], R);                                               \
            const V *ps = pex + s * w;                                                             \
            V *qs = q + s * w;                                                                     \
            V *ak = AT(V, k->acc, nd->feat, R);                                                    \
            uint32_t ol = oe[2 * (size_t)s];                                                       \
            uint32_t orr = oe[2 * (size_t)s + 1];                                                  \
            double a0 = nd->a[0];                                                                  \
            double a1 = nd->a[1];                                                                  \
                                                                                                   \
            if (nd->pe == none) {                                                                  \
                /* O' is 1 on the side x takes: D = q_hot - S. */                                  \
                UNROLL                                                                             \
                for (size_t c = 0; c < NPART; c++) {                                               \
                    VI mr = MASK(orr, c);                                                          \
                    for (size_t v = 0; v < unv; v++) {                                             \
                        V l = q0[v * NPART + c];                                                   \
                        V r = q1[v * NPART + c];                                                   \
                        V sum = a0 * l + a1 * r;                                                   \
                        V d = VSEL(V, VI, mr, r, l) - sum;                                         \
                        qs[v * NPART + c] = sum + TQV(tq, v, c) * d;                               \
                        ak[c] += ps[v * NPART + c] * d;                                            \
                    }                                                                              \
                }                                                                                  \
            } else {                                                                               \
                const v4d *rr = rcp + nd->rcp;                                                     \
                uint32_t op = oe[nd->pe];                                                          \
                UNROLL                                                                             \
                for (size_t c = 0; c < NPART; c++) {                                               \
                    VI ml = MASK(ol, c);                                                           \
                    VI mr = MASK(orr, c);                                                          \
                    VI mo = MASK(op, c);                                                           \
                    V cc = VSEL(V, VI, mo, SPLAT_##V(rr[0][1]), SPLAT_##V(rr[0][2]));              \
                    for (size_t v = 0; v < unv; v++) {                                             \
                        V l = q0[v * NPART + c];                                                   \
                        V r = q1[v * NPART + c];                                                   \
                        V sum = a0 * l + a1 * r;                                                   \
                        V dd = VOR2(V, VI, l, ml, r, mr) - sum;                                    \
                        V ri = VSEL(V, VI, mo, ROWS_##V(&rr[1 + unv + v], c),                      \
                                    ROWS_##V(&rr[1 + v], c));                                      \
                        V qq = (sum + TQV(tq, v, c) * dd) * ri;                                    \
                        qs[v * NPART + c] = qq;                                                    \
                        ak[c] += ps[v * NPART + c] * (dd - cc * qq);                               \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* Every tree that is not classic, in one call per batch of rows (so                           \
     * that the loop state stays in registers from tree to tree). */                               \
    static inline __attribute__((always_inline)) void NAME(const ch_forest *f, kargs *k)           \
    {                                                                                              \
        const char *quad = f->lanes.quad[WIDX(LW)];                                                \
        size_t vb = sizeof(V) * ((LW) < 4 ? 4 / (LW) : 1); /* a group's bytes */                   \
        k->msk = f->lanes.msk[WIDX(LW)];                                                           \
        k->moff = f->lanes.moff[ROWS_LOG2(R)][WIDX(LW)];                                           \
        k->rcp = f->rcp;                                                                           \
        for (size_t ti = 0; ti < f->n_trees; ti++) {                                               \
            const tree_info *ts = &f->trees[ti];                                                   \
            const char *tab;                                                                       \
            if (ts->n_in + ts->n_tw + ts->n_bot == 0 || ts->classic)                               \
                continue;                                                                          \
            tab = quad + quad_off(ts->nv) * vb;                                                    \
            k->in = f->in + ts->in_off;                                                            \
            k->bn = f->bn + ts->bn_off;                                                            \
            k->tw = f->tw + ts->tw_off;                                                            \
            k->n_in = ts->n_in;                                                                    \
            k->n_tw = ts->n_tw;                                                                    \
            k->n_plain = ts->n_bot_plain;                                                          \
            k->n_bot = ts->n_bot;                                                                  \
            k->lk = f->lk + ts->lk_off;                                                            \
            k->n_lk = ts->n_lk;                                                                    \
            k->tq = tab;                                                                           \
            k->wq = tab + ts->nv * vb;                                                             \
            k->uq = tab + 2 * ts->nv * vb;                                                         \
            if (ts->nv == 1)                                                                       \
                NAME##_tree(k, 1);                                                                 \
            else                                                                                   \
                NAME##_tree(k, ts->nv);                                                            \
        }                                                                                          \
    }

/* Lane masks for the vectors of 2, 4 and 8 doubles. */
typedef int64_t v2di __attribute__((vector_size(16)));
typedef int64_t v4di __attribute__((vector_size(32)));
typedef int64_t v8di __attribute__((vector_size(64)));

/* AVX2 (and AVX-512 for one row), AVX-512, generic. */
SHAP_KERNEL(shap_r1, v4d, v4di, 4, 1)
SHAP_KERNEL(shap_r2, v4d, v4di, 4, 2)
SHAP_KERNEL(shap_r4, v4d, v4di, 4, 4)
SHAP_KERNEL(shap_r8, v4d, v4di, 4, 8)
SHAP_KERNEL(shap_r2w, v8d, v8di, 8, 2)
SHAP_KERNEL(shap_r4w, v8d, v8di, 8, 4)
SHAP_KERNEL(shap_r8w, v8d, v8di, 8, 8)
SHAP_KERNEL(shap_g1, v2d, v2di, 2, 1)
SHAP_KERNEL(shap_g2, v2d, v2di, 2, 2)
SHAP_KERNEL(shap_g4, v2d, v2di, 2, 4)
SHAP_KERNEL(shap_g8, v2d, v2di, 2, 8)
#undef AT

/* The portable kernels: whatever vector instructions the build targets. */
static void shap_generic1(const ch_forest *f, kargs *k)
{
    shap_g1(f, k);
}

static void shap_generic2(const ch_forest *f, kargs *k)
{
    shap_g2(f, k);
}

static void shap_generic4(const ch_forest *f, kargs *k)
{
    shap_g4(f, k);
}

static void shap_generic8(const ch_forest *f, kargs *k)
{
    shap_g8(f, k);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same code with 256-bit registers and fused multiply-adds: one
 * instruction per v4d operation instead of two, and a*b + c in one. GCC
 * contracts a*b + c into an FMA only when told to (ISO C mode turns
 * -ffp-contract off); the optimize attribute does it for these functions
 * alone, with the bodies inlined into them. Results differ from the
 * generic kernels in the last bits only (the tests bound the difference);
 * the kernels of one instruction set give a row the same bits. */
#if defined(__clang__)
#define CONTRACT /* clang contracts a*b + c within an expression by default */
#else
#define CONTRACT __attribute__((optimize("fp-contract=fast")))
#endif
#define TARGET_AVX2   __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")))

TARGET_AVX2 CONTRACT static void shap_avx2_1(const ch_forest *f, kargs *k)
{
    shap_r1(f, k);
}

TARGET_AVX2 CONTRACT static void shap_avx2_2(const ch_forest *f, kargs *k)
{
    shap_r2(f, k);
}

TARGET_AVX2 CONTRACT static void shap_avx2_4(const ch_forest *f, kargs *k)
{
    shap_r4(f, k);
}

TARGET_AVX2 CONTRACT static void shap_avx2_8(const ch_forest *f, kargs *k)
{
    shap_r8(f, k);
}

/* With AVX-512 two rows fill a register (v8d), so they cost about what one
 * row does with AVX2; the one-row kernel gains the 32 registers. */
TARGET_AVX512 CONTRACT static void shap_avx512_1(const ch_forest *f, kargs *k)
{
    shap_r1(f, k);
}

TARGET_AVX512 CONTRACT static void shap_avx512_2(const ch_forest *f, kargs *k)
{
    shap_r2w(f, k);
}

TARGET_AVX512 CONTRACT static void shap_avx512_4(const ch_forest *f, kargs *k)
{
    shap_r4w(f, k);
}

TARGET_AVX512 CONTRACT static void shap_avx512_8(const ch_forest *f, kargs *k)
{
    shap_r8w(f, k);
}

/* The best kernel set this CPU runs: ISA_AVX512, ISA_AVX2 or ISA_GENERIC. */
static int cpu_isa(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return ISA_GENERIC;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return ISA_AVX512;
    return ISA_AVX2;
}

static void pick_kernels(ch_forest *f, int isa)
{
    static const shap_kernel_fn set[3][ROWS_N] = {
        {shap_generic1, shap_generic2, shap_generic4, shap_generic8},
        {shap_avx2_1, shap_avx2_2, shap_avx2_4, shap_avx2_8},
        {shap_avx512_1, shap_avx512_2, shap_avx512_4, shap_avx512_8},
    };
    static const size_t batch[3] = {BATCH_GENERIC, BATCH_AVX2, BATCH_AVX512};
    f->isa = isa;
    f->batch_rows = batch[isa];
    for (int r = 0; r < ROWS_N; r++)
        f->kernel[r] = set[isa][r];
}
#else
static int cpu_isa(void)
{
    return ISA_GENERIC;
}

static void pick_kernels(ch_forest *f, int isa)
{
    (void)isa;
    f->isa = ISA_GENERIC;
    f->batch_rows = BATCH_GENERIC;
    f->kernel[0] = shap_generic1;
    f->kernel[1] = shap_generic2;
    f->kernel[2] = shap_generic4;
    f->kernel[3] = shap_generic8;
}
#endif

/* ------------------------------------------------------------------------
 * TreeSHAP, classic (Lundberg et al. 2018, Algorithm 2, as in XGBoost's
 * RegTree::TreeShap, in double precision)
 * ------------------------------------------------------------------------ */

static void path_extend(path_el *u, size_t d, double zf, double of, int64_t feat)
{
    u[d].feat = feat;
    u[d].zf = zf;
    u[d].of = of;
    u[d].pw = d == 0 ? 1.0 : 0.0;
    for (size_t i = d; i-- > 0;) {
        u[i + 1].pw += of * u[i].pw * (double)(i + 1) / (double)(d + 1);
        u[i].pw = zf * u[i].pw * (double)(d - i) / (double)(d + 1);
    }
}

/* Removes element 'at' from the path of length d + 1. An element with both
 * fractions 0 (a zero-cover branch) zeroes every weight, which then stay
 * 0 below it; they are set to 0 here instead of dividing by 0. */
static void path_unwind(path_el *u, size_t d, size_t at)
{
    double of = u[at].of;
    double zf = u[at].zf;
    double next = u[d].pw;
    for (size_t i = d; i-- > 0;) {
        if (of != 0) {
            double tmp = u[i].pw;
            u[i].pw = next * (double)(d + 1) / ((double)(i + 1) * of);
            next = tmp - u[i].pw * zf * (double)(d - i) / (double)(d + 1);
        } else if (zf != 0) {
            u[i].pw = (u[i].pw * (double)(d + 1)) / (zf * (double)(d - i));
        } else {
            u[i].pw = 0;
        }
    }
    for (size_t i = at; i < d; i++) {
        u[i].feat = u[i + 1].feat;
        u[i].zf = u[i + 1].zf;
        u[i].of = u[i + 1].of;
    }
}

/* The total permutation weight of the path without element 'at'. */
static double path_unwound_sum(const path_el *u, size_t d, size_t at)
{
    double of = u[at].of;
    double zf = u[at].zf;
    double next = u[d].pw;
    double total = 0;
    for (size_t i = d; i-- > 0;) {
        if (of != 0) {
            double tmp = next * (double)(d + 1) / ((double)(i + 1) * of);
            total += tmp;
            next = u[i].pw - tmp * zf * ((double)(d - i) / (double)(d + 1));
        } else if (zf != 0) {
            total += (u[i].pw / zf) / ((double)(d - i) / (double)(d + 1));
        }
    }
    return total;
}

static int go_left(const cnode *nd, const double *x)
{
    float xv = (float)x[nd->feat];
    if (xv != xv)
        return nd->dl;
    return xv < nd->thr;
}

/* XGBoost's recursion: 'parent' holds the path so far (d + 1 elements),
 * this call works in the block right after it. */
static void classic_recurse(const cnode *cn, int32_t c, const double *x, double *phi,
                            path_el *parent, size_t d, double pz, double po, int64_t pfeat)
{
    const cnode *nd = &cn[c];
    path_el *u = parent + d + 1;

    memcpy(u, parent, (d + 1) * sizeof *u);
    path_extend(u, d, pz, po, pfeat);
    if (nd->left < 0) {
        for (size_t i = 1; i <= d; i++) {
            double w = path_unwound_sum(u, d, i);
            phi[u[i].feat] += w * (u[i].of - u[i].zf) * (double)nd->thr;
        }
        return;
    }
    {
        int32_t hot = go_left(nd, x) ? nd->left : nd->right;
        int32_t cold = hot == nd->left ? nd->right : nd->left;
        float hz = cn[hot].cover / nd->cover;
        float cz = cn[cold].cover / nd->cover;
        double iz = 1.0;
        double io = 1.0;
        size_t at = 0;
        while (at <= d && u[at].feat != (int64_t)nd->feat)
            at++;
        if (at != d + 1) {
            iz = u[at].zf;
            io = u[at].of;
            path_unwind(u, d, at);
            d--;
        }
        /* Fractions multiply in float, as in XGBoost. */
        classic_recurse(cn, hot, x, phi, u, d + 1, (double)(hz * (float)iz), io, nd->feat);
        classic_recurse(cn, cold, x, phi, u, d + 1, (double)(cz * (float)iz), 0.0, nd->feat);
    }
}

/* Value of the leaf 'x' reaches in the tree rooted at canonical 'c'. */
static float classic_leaf(const cnode *cn, int32_t c, const double *x)
{
    while (cn[c].left >= 0)
        c = go_left(&cn[c], x) ? cn[c].left : cn[c].right;
    return cn[c].thr;
}

/* Path elements classic TreeSHAP needs for a tree of 'depth' levels. */
static size_t classic_path_len(size_t depth)
{
    return (depth + 3) * (depth + 4) / 2;
}

/* Classic TreeSHAP of tree 'ti' into 'phi'; returns the reached leaf. */
static float classic_tree(const ch_forest *f, size_t ti, const double *x, double *phi,
                          path_el *scratch, size_t n_scratch)
{
    const tree_info *ts = &f->trees[ti];
    int32_t root = (int32_t)ts->c_off;
    if (f->cn[root].left >= 0 && n_scratch > 0) {
        /* The root copies element 0 before extending it; the rest is
         * written before it is read. */
        memset(scratch, 0, sizeof *scratch);
        classic_recurse(f->cn, root, x, phi, scratch, 0, 1.0, 1.0, -1);
    }
    return classic_leaf(f->cn, root, x);
}

/* ------------------------------------------------------------------------
 * Workspace and the public SHAP call
 * ------------------------------------------------------------------------ */

/* Scratch of one row in a workspace, in bytes, past which a workspace
 * holds fewer than ROWS_MAX rows (so that very large trees do not need
 * ROWS_MAX times the memory; those rows take a smaller batch). */
#ifndef CH_FOREST_WS_ROW_BYTES
#define CH_FOREST_WS_ROW_BYTES ((size_t)8 << 20)
#endif

CH_API ch_err ch_forest_ws_new(const ch_forest *f, ch_forest_ws **out, ch_error *err)
{
    ch_forest_ws *ws;
    size_t nv = f->max_nv > 0 ? (size_t)f->max_nv : 1;
    size_t slots = f->max_slots + 1;
    size_t n_path = f->classic_depth > 0 ? classic_path_len(f->classic_depth) : 0;
    size_t rows = ROWS_MAX;
    size_t n_vec;
    size_t bytes;
    unsigned char *p;

    /* No overflow: every factor is bounded by the loader's limits. */
    while (rows > 1 && (2 * slots * nv + f->n_features) * sizeof(v4d) > CH_FOREST_WS_ROW_BYTES)
        rows /= 2;
    n_vec = (2 * slots * nv + f->n_features) * rows;
    bytes = n_vec * sizeof(v4d) + n_path * sizeof(path_el) +
            2 * f->n_features * rows * sizeof(float) + 2 * slots + 64;
    ws = ch_calloc(1, sizeof *ws);
    if (ws == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    p = alloc_aligned(bytes, &ws->mem);
    if (p == NULL) {
        ch_free(ws);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    ws->max_slots = f->max_slots;
    ws->max_nv = (int)nv;
    ws->n_feat = f->n_features;
    ws->n_path = n_path;
    ws->rows = rows;
    ws->pex = (v4d *)(void *)p;
    ws->q = ws->pex + slots * nv * rows;
    ws->acc = ws->q + slots * nv * rows;
    p = (unsigned char *)(ws->acc + f->n_features * rows);
    ws->path = n_path > 0 ? (path_el *)(void *)p : NULL;
    p += n_path * sizeof(path_el);
    ws->xf = (float *)(void *)p;
    p += 2 * f->n_features * rows * sizeof(float);
    ws->oe = p;
    *out = ws;
    return CH_OK;
}

CH_API void ch_forest_ws_free(ch_forest_ws *ws)
{
    if (ws == NULL)
        return;
    ch_free(ws->mem);
    ws->mem = NULL;
    ch_free(ws);
}

/*
 * Contributions and margins of the 'R' rows at 'x' (1, 2 or 4): fills
 * their doubled rows interleaved, runs the kernel for R rows (or the
 * classic recursion, row by row) over every tree, takes each margin from
 * the same walk as ch_forest_predict() (so the two agree to the bit), and
 * closes with the bias that makes each row's sum come out at its margin
 * (see the top of the file).
 */
static void shap_rows(const ch_forest *f, const double *x, size_t R, double *phi, double *margins,
                      ch_forest_ws *ws)
{
    size_t nf = f->n_features;
    const double *acc = (const double *)(void *)ws->acc;
    kargs k;

    CH_ASSERT(ws->max_slots >= f->max_slots && ws->max_nv >= f->max_nv && ws->n_feat >= nf &&
              (f->classic_depth == 0 || ws->n_path >= classic_path_len(f->classic_depth)) &&
              R >= 1 && R <= ws->rows && (R & (R - 1)) == 0);
    for (size_t r = 0; r < R; r++) {
        const double *xr = x + r * nf;
        for (size_t j = 0; j < nf; j++) {
            float v = (float)xr[j];
            int miss = v != v;
            ws->xf[j * R + r] = miss ? -INFINITY : v;
            ws->xf[(nf + j) * R + r] = miss ? INFINITY : v;
            phi[r * (nf + 1) + j] = 0.0;
        }
    }
    memset(ws->acc, 0, nf * R * sizeof(v4d));
    memset(&k, 0, sizeof k);
    k.xf = ws->xf;
    k.pex = ws->pex;
    k.q = ws->q;
    k.acc = ws->acc;
    k.oe = ws->oe;
    f->kernel[ROWS_LOG2(R)](f, &k);
    for (size_t r = 0; r < R; r++) {
        double *pr = phi + r * (nf + 1);
        double md = 0;
        float mf;
        for (size_t ti = 0; f->n_classic > 0 && ti < f->n_trees; ti++)
            if (f->trees[ti].classic)
                classic_tree(f, ti, x + r * nf, pr, ws->path, ws->n_path);
        for (size_t j = 0; j < nf; j++) {
            const double *a = acc + (j * R + r) * 4;
            pr[j] += (a[0] + a[1]) + (a[2] + a[3]);
        }
        mf = walk(f, ws->xf + r, R, x + r * nf, 0, &md);
        pr[nf] = f->bias + ((double)mf - md);
        margins[r] = (double)mf;
    }
}

CH_API double ch_forest_shap(const ch_forest *f, const double *x, double *phi, ch_forest_ws *ws)
{
    double m;
    shap_rows(f, x, 1, phi, &m, ws);
    return m;
}

/*
 * Rows go to the kernel f->batch_rows at a time, or as many as 'ws' holds
 * (the remainder in smaller powers of two); every kernel of an instruction set gives a row the same
 * bits, so how rows are grouped does not show in the results.
 */
CH_API void ch_forest_shap_batch(const ch_forest *f, const double *x, size_t n_rows, double *phi,
                                 double *margins, ch_forest_ws *ws)
{
    size_t nf = f->n_features;
    double m[ROWS_MAX];
    size_t i = 0;
    while (i < n_rows) {
        size_t R = f->batch_rows < ws->rows ? f->batch_rows : ws->rows;
        while (R > n_rows - i)
            R /= 2;
        shap_rows(f, x + i * nf, R, phi + i * (nf + 1), m, ws);
        if (margins != NULL)
            memcpy(margins + i, m, R * sizeof *m);
        i += R;
    }
}

/* ------------------------------------------------------------------------
 * Internals for tests and benchmarks (forest_int.h)
 * ------------------------------------------------------------------------ */

ch_err ch__forest_shap_classic(const ch_forest *f, const double *x, double *phi, double *margin,
                               ch_error *err)
{
    size_t n = classic_path_len(f->max_depth + 1);
    path_el *path = ch_malloc_array(n, sizeof *path);
    float mf = f->base_f;
    double md = (double)f->base_f;

    if (path == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t k = 0; k < f->n_features; k++)
        phi[k] = 0.0;
    for (size_t ti = 0; ti < f->n_trees; ti++) {
        float hot = classic_tree(f, ti, x, phi, path, n);
        mf += hot;
        md += (double)hot;
    }
    phi[f->n_features] = f->bias + ((double)mf - md);
    *margin = (double)mf;
    ch_free(path);
    return CH_OK;
}

static const char *const isa_names[] = {"generic", "avx2", "avx512"};

const char *ch__forest_kernel(const ch_forest *f)
{
    return isa_names[f->isa];
}

int ch__forest_set_kernel(ch_forest *f, const char *name)
{
    for (int isa = 0; isa < 3; isa++) {
        if (strcmp(name, isa_names[isa]) == 0) {
            if (isa > cpu_isa())
                return -1;
            pick_kernels(f, isa);
            return 0;
        }
    }
    return -1;
}

int ch__forest_set_batch_rows(ch_forest *f, size_t rows)
{
    if (rows != 1 && rows != 2 && rows != 4 && rows != 8)
        return -1;
    f->batch_rows = rows;
    return 0;
}

void ch__forest_get_stats(const ch_forest *f, ch__forest_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_nodes = f->n_cn;
    out->n_internal = f->n_in + 3 * f->n_tw + f->n_bn;
    out->n_repeat = f->n_repeat;
    out->n_classic_trees = f->n_classic;
    out->max_depth = f->max_depth;
    out->quad_points = (size_t)(4 * f->max_nv);
    out->model_bytes = f->n_pn * (sizeof(pnode) + sizeof(float)) + f->n_in * sizeof(inode) +
                       f->n_tw * sizeof(tnode) + f->n_bn * sizeof(bnode) + f->n_lk * sizeof(lkid) +
                       f->n_rcp * sizeof(v4d);
}
