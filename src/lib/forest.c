/*
 * forest.c -- XGBoost tree ensembles compiled for the request path: margins
 * and exact path-dependent TreeSHAP for one row in a few microseconds.
 *
 * Loading reads the JSON object XGBoost's SaveModel writes (binary:logistic,
 * gbtree, numerical splits) and lays every tree out three times, each time
 * for one job:
 *
 *   canonical  all reachable nodes of all trees in one array, depth-first
 *              (pre-order) per tree, with children, cover and leaf value as
 *              XGBoost has them. Used to build the other two and by the
 *              classic TreeSHAP reference.
 *   predict    16-byte nodes, breadth-first per tree so that the two children
 *              of a node are adjacent (right = left + 1) and the first levels
 *              share cache lines. A leaf points to itself and can never step
 *              right, so ch_forest_predict() walks 8 trees at once for a fixed
 *              number of steps (the group's depth) with no data-dependent
 *              branch, which keeps 8 independent load chains in flight.
 *   shap       32-byte records, one per split node (leaves are folded into
 *              their parent), pre-order per tree, holding what the TreeSHAP
 *              kernel reads: feature, threshold, the cover fractions of both
 *              child edges (already merged with earlier splits on the same
 *              feature), the leaf values of leaf children and where the
 *              previous split on the same feature is. 300 trees of depth 6
 *              take about 600 KB, which stays in L2 from row to row.
 *
 * Exactness against libxgboost. XGBoost converts each input to float and
 * goes left when float(x) < threshold, NaN following the node's default
 * direction; it starts every margin at base margin -logf(1/base_score - 1)
 * computed in float and adds the leaf values tree by tree in float. All of
 * this is replicated, so margins are bit-identical to XGBoost's. (The only
 * imprecision: JSON numbers are parsed to double and then rounded to float,
 * where XGBoost parses to float directly; the two differ only for decimal
 * strings within 2^-53 of a float rounding boundary, which XGBoost's own
 * shortest-representation writer does not produce in practice.)
 *
 * Contributions: path-dependent TreeSHAP, the quantity XGBoost's
 * pred_contribs computes with the recursion of Lundberg, Erion and Lee,
 * "Consistent individualized feature attribution for tree ensembles"
 * (2018), Algorithm 2, which costs O(L D^2) per tree (L leaves, depth D).
 * We compute the same numbers with the polynomial formulation of Yu, Xu,
 * Bifet and Read, "Linear TreeShap" (NeurIPS 2022), O(N D) per tree. For a
 * leaf l whose path has unique features j (repeated splits on a feature
 * merged, as TreeSHAP does) with cover fraction Z_j and "x satisfies every
 * split on j" O_j in {0, 1}, the Shapley weights are Beta integrals, so
 *
 *     phi_k += v_l (O_k - Z_k) * integral_0^1 prod_{j != k} (Z_j + t (O_j - Z_j)) dt.
 *
 * The integrand is a polynomial of degree < D, so an m-point Gauss-Legendre
 * rule with 2m >= D is exact; we evaluate every polynomial at the m nodes
 * at once (m = 4 per vector of doubles: one AVX2 register covers depth 8).
 * Per row and tree, one top-down pass carries Pex_p(t), the product of the
 * path's factors to node p except the one of p's own feature (times the
 * quadrature weights), and one bottom-up pass carries Q_p(t), the leaves'
 * values below p times their factors below p; each split then adds
 * Pex_p(t) * D_p(t) to its feature, where D_p = sum over the two children
 * of (O' - Z') Q_child, minus (O_prev - Z_prev) Q_p when the feature split
 * earlier on the path (that earlier split's share of these leaves moves
 * here). The two passes are straight loops over the 32-byte records,
 * branch-free except for repeated features, whose previous factor is
 * divided out. Trees that this cannot handle exactly (a repeated feature
 * whose merged cover fraction is 0, or more than 64 distinct features on
 * one path) go to the classic recursion instead; XGBoost's own models
 * essentially never have either.
 *
 * Contributions are computed in double from XGBoost's float cover fractions
 * (cover(child) / cover(parent) in float, merged products in float, as
 * XGBoost does), so they agree with pred_contribs to its float rounding.
 * The bias is base margin + the trees' expected values, plus the
 * difference between the float margin and the double sum of the same
 * leaves: the contributions then add up to the returned margin exactly
 * (up to double rounding), and that margin is XGBoost's.
 *
 * Workload: loaded once per model, then scored and explained per request
 * from many threads. Nothing here allocates after loading; the SHAP
 * kernel's scratch lives in a per-thread ch_forest_ws.
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

/* Trees predicted side by side. */
#define GROUP 8

/* The fast kernel handles up to NV_MAX vectors of 4 quadrature points,
 * exact for paths of up to 8 * NV_MAX distinct features. */
#define NV_MAX 8

#define TREES_PATH "learner.gradient_booster.model.trees"

typedef double v4d __attribute__((vector_size(32)));

/* A node as XGBoost has it, with children as indices into the same array. */
typedef struct cnode {
    int32_t left;  /* canonical index of the left child; -1 for a leaf */
    int32_t right; /* canonical index of the right child; -1 for a leaf */
    uint32_t feat; /* split feature */
    float thr;     /* split threshold; the leaf value for a leaf */
    float cover;   /* sum of hessians (XGBoost's sum_hessian) */
    uint8_t dl;    /* 1: missing values go left */
} cnode;

/* A predict node. Internal: go right iff float(x) >= thr, or x is NaN and
 * the default is right. Leaf: thr is NaN (never >=) and the default is
 * left, so it steps to 'left' = itself forever. */
typedef struct pnode {
    float thr;     /* threshold; NaN for a leaf */
    uint32_t feat; /* feature | PN_DEFAULT_LEFT */
    uint32_t left; /* index of the left child (right = left + 1); a leaf: itself */
    float leaf;    /* leaf value; 0 for a split */
} pnode;
#define PN_DEFAULT_LEFT 0x80000000u

/* A split node for the SHAP kernel ('i' below is its index in its tree's
 * pre-order of split nodes; 'ni' the tree's number of split nodes, which
 * is also the index of a scratch slot that stands in for every leaf). */
typedef struct snode {
    uint32_t feat;  /* split feature */
    float thr;      /* threshold, as in pnode */
    float a[2];     /* merged cover fraction Z' of the left and right edge */
    float v[2];     /* leaf value of a leaf child; 0 for a split child */
    uint32_t right; /* index of the right child if a split, else ni */
    uint32_t bits;  /* SN_* flags | prev_edge << SN_EDGE_SHIFT */
} snode;
#define SN_DEFAULT_LEFT   1u /* missing values go left */
#define SN_LEFT_SPLIT     2u /* the left child is a split, at index i + 1 */
#define SN_REPEAT         4u /* the feature splits on the path above */
#define SN_EDGE_SHIFT     3
/* prev_edge: for SN_REPEAT, 2 * j + side, the edge below the nearest
 * ancestor j on the same feature (side 0 left, 1 right); otherwise 2 * ni,
 * a scratch slot that always holds 1. */

/* Per tree. */
typedef struct tree_info {
    uint32_t c_off;  /* first canonical node */
    uint32_t c_n;    /* canonical nodes */
    uint32_t s_off;  /* first snode */
    uint32_t s_n;    /* split nodes (ni) */
    uint32_t p_root; /* predict root */
    uint16_t depth;  /* deepest leaf, edges */
    uint8_t nv;      /* vectors of quadrature points (0 when classic) */
    uint8_t classic; /* 1: the SHAP kernel uses classic TreeSHAP here */
    float root_leaf; /* leaf value when the root is a leaf */
    double expect;   /* cover-weighted mean of the leaves (the tree's bias) */
} tree_info;

typedef float (*shap_kernel_fn)(const snode *nd, uint32_t ni, int nv, const double *x,
                                const v4d *tq, const v4d *wq, v4d *pex, v4d *q, uint8_t *oe,
                                uint8_t *hp, v4d *acc);

struct ch_forest {
    size_t n_features;    /* row width callers feed */
    size_t n_trees;       /* trees */
    float base_f;         /* base margin, as XGBoost computes it (float) */
    double bias;          /* base_f + sum of the trees' expected values */
    tree_info *trees;     /* n_trees */
    cnode *cn;            /* canonical nodes, all trees */
    size_t n_cn;          /* entries of 'cn' */
    pnode *pn;            /* predict nodes; pn[0] is a dummy leaf of value 0 */
    size_t n_pn;          /* entries of 'pn' */
    uint32_t *proot;      /* predict roots, padded with 0 to a multiple of GROUP */
    uint16_t *gdepth;     /* steps per group of GROUP trees */
    size_t n_groups;      /* groups */
    snode *sn;            /* SHAP split nodes, all trees */
    size_t n_sn;          /* entries of 'sn' */
    void *quad_mem;       /* allocation behind 'quad' */
    const v4d *quad;      /* Gauss-Legendre nodes and weights on [0, 1], see quad_at() */
    size_t max_ni;        /* most split nodes in one fast tree */
    int max_nv;           /* most quadrature vectors of one fast tree */
    size_t classic_depth; /* deepest classic tree + 1 (0: none) */
    size_t max_depth;     /* deepest tree */
    size_t n_repeat;      /* split nodes with a repeated feature */
    size_t n_classic;     /* classic trees */
    int use_avx2;         /* kernel in use */
    shap_kernel_fn kernel;
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
    size_t max_ni;    /* capacity: split nodes */
    int max_nv;       /* capacity: quadrature vectors */
    size_t n_feat;    /* capacity: features */
    size_t n_path;    /* capacity: classic path elements */
    v4d *pex;         /* (max_ni + 1) * max_nv */
    v4d *q;           /* (max_ni + 1) * max_nv */
    v4d *acc;         /* n_feat */
    uint8_t *oe;      /* 2 * max_ni + 1 */
    uint8_t *hp;      /* max_ni + 1 */
    path_el *path;    /* n_path, or NULL */
};

/* Quadrature nodes then weights for 'nv' vectors: quad[nv(nv-1)], nv each. */
static const v4d *quad_at(const ch_forest *f, int nv, const v4d **weights)
{
    const v4d *t = f->quad + (size_t)nv * (size_t)(nv - 1);
    *weights = t + nv;
    return t;
}

/* ------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------ */

/* 'n' bytes aligned to 32 (what v4d loads need); '*raw' gets what to free. */
static void *alloc_aligned(size_t n, void **raw)
{
    unsigned char *p;
    uintptr_t a;
    if (n > SIZE_MAX - 32)
        return NULL;
    p = ch_calloc(1, n + 32);
    *raw = p;
    if (p == NULL)
        return NULL;
    a = ((uintptr_t)p + 31u) & ~(uintptr_t)31u;
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
    if (t->l == NULL || t->r == NULL || t->feat == NULL || t->thr == NULL || t->cover == NULL ||
        t->dl == NULL || t->canon == NULL || t->stack == NULL || t->stack_d == NULL ||
        t->lidx == NULL || t->queue == NULL || t->last_edge == NULL || t->distinct == NULL)
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
            return fail(err, CH_EMODEL, "%s.tree_param.size_leaf_vector: vector leaves are not "
                        "supported", path);
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
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].left_children[%zu]: not -1 or a node "
                        "index in 1..%zu", ti, j, n - 1);
        if (arr_int(a->r, j, -1, (long)n - 1, &r) != 0 || r == 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].right_children[%zu]: not -1 or a node "
                        "index in 1..%zu", ti, j, n - 1);
        if ((l < 0) != (r < 0) || (l >= 0 && l == r))
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu]: node %zu has children %ld and %ld",
                        ti, j, l, r);
        t->l[j] = (int32_t)l;
        t->r[j] = (int32_t)r;
        t->feat[j] = 0;
        if (l >= 0) {
            if (arr_int(a->si, j, 0, (long)n_feat - 1, &v) != 0)
                return fail(err, CH_EFORMAT, TREES_PATH "[%zu].split_indices[%zu]: not a "
                            "feature index below num_feature %zu", ti, j, n_feat);
            t->feat[j] = (uint32_t)v;
            if (a->st != NULL && (arr_int(a->st, j, 0, 1, &v) != 0 || v != 0))
                return fail(err, CH_EMODEL, TREES_PATH "[%zu].split_type[%zu]: categorical "
                            "splits are not supported", ti, j);
        }
        if (arr_float(a->sc, j, 0, &t->thr[j]) != 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].split_conditions[%zu]: not a finite "
                        "float", ti, j);
        if (arr_int(a->dl, j, 0, 1, &v) != 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].default_left[%zu]: not 0 or 1", ti,
                        j);
        t->dl[j] = (uint8_t)v;
        if (arr_float(a->sh, j, 1, &t->cover[j]) != 0)
            return fail(err, CH_EFORMAT, TREES_PATH "[%zu].sum_hessian[%zu]: not a finite "
                        "number >= 0", ti, j);
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
                return fail(err, CH_EFORMAT, TREES_PATH "[%zu].sum_hessian[%d]: a split node "
                            "needs a positive cover", ti, (int)j);
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
            p->feat = PN_DEFAULT_LEFT;
            p->left = base + head;
            p->leaf = c->thr;
        } else {
            p->thr = c->thr;
            p->feat = c->feat | (c->dl ? PN_DEFAULT_LEFT : 0u);
            p->left = base + tail;
            p->leaf = 0.0f;
            t->queue[tail++] = c->left;
            t->queue[tail++] = c->right;
        }
        head++;
    }
    ts->p_root = base;
    f->n_pn += tail;
}

/* State of the SHAP layout walk over one tree. */
typedef struct sh_walk {
    ch_forest *f;
    load_tmp *t;
    snode *sn;       /* the tree's first snode */
    uint32_t ni;     /* the tree's split nodes */
    uint32_t c_off;  /* the tree's first canonical node */
    size_t n_dist;   /* distinct features on the current path */
    size_t max_dist; /* most distinct features on a path */
    double expect;   /* sum of leaf value x merged cover fractions */
    int classic;     /* 1: the fast kernel cannot do this tree */
    size_t n_repeat; /* split nodes on a repeated feature */
} sh_walk;

/* Merged cover fraction of edge 'e' (2 * j + side). */
static float edge_z(const sh_walk *w, int32_t e)
{
    return w->sn[e >> 1].a[e & 1];
}

/* Adds leaf value 'v' times the product of the merged cover fractions of
 * the path's distinct features: its share of the tree's expected value. */
static void sh_leaf(sh_walk *w, float v)
{
    double p = 1.0;
    for (size_t k = 0; k < w->n_dist; k++)
        p *= (double)edge_z(w, w->t->last_edge[w->t->distinct[k]]);
    w->expect += (double)v * p;
    if (w->n_dist > w->max_dist)
        w->max_dist = w->n_dist;
}

/*
 * Fills the snode of canonical split node 'c' and recurses into its split
 * children (depth is bounded by CH_FOREST_MAX_DEPTH). t->last_edge holds,
 * per feature, the edge below the nearest split on it along the path.
 */
static void sh_visit(sh_walk *w, int32_t c)
{
    const cnode *nd = &w->f->cn[c];
    load_tmp *t = w->t;
    uint32_t i = (uint32_t)t->lidx[c - (int32_t)w->c_off];
    snode *s = &w->sn[i];
    int32_t pe = t->last_edge[nd->feat];
    int rep = pe >= 0;
    float zprev = rep ? edge_z(w, pe) : 1.0f;
    int32_t kids[2] = {nd->left, nd->right};

    s->feat = nd->feat;
    s->thr = nd->thr;
    s->bits = (nd->dl ? SN_DEFAULT_LEFT : 0u) | (rep ? SN_REPEAT : 0u) |
              ((rep ? (uint32_t)pe : 2u * w->ni) << SN_EDGE_SHIFT);
    for (int side = 0; side < 2; side++) {
        const cnode *ch = &w->f->cn[kids[side]];
        /* XGBoost: float cover fraction, times the incoming fraction in float. */
        float z = ch->cover / nd->cover;
        s->a[side] = rep ? z * zprev : z;
        s->v[side] = ch->left < 0 ? ch->thr : 0.0f;
    }
    if (nd->left >= 0 && w->f->cn[nd->left].left >= 0)
        s->bits |= SN_LEFT_SPLIT;
    s->right = w->f->cn[nd->right].left >= 0
                   ? (uint32_t)t->lidx[nd->right - (int32_t)w->c_off]
                   : w->ni;
    if (rep) {
        w->n_repeat++;
        if (zprev == 0.0f)
            w->classic = 1; /* the previous factor cannot be divided out */
    } else {
        t->distinct[w->n_dist++] = nd->feat;
    }
    for (int side = 0; side < 2; side++) {
        const cnode *ch = &w->f->cn[kids[side]];
        t->last_edge[nd->feat] = (int32_t)(2 * i + (uint32_t)side);
        if (ch->left < 0)
            sh_leaf(w, ch->thr);
        else
            sh_visit(w, kids[side]);
    }
    t->last_edge[nd->feat] = pe;
    if (!rep)
        w->n_dist--;
}

/* Builds the SHAP records of tree 'ti' at f->sn + f->n_sn. */
static void tree_shap_layout(ch_forest *f, size_t ti, load_tmp *t)
{
    tree_info *ts = &f->trees[ti];
    sh_walk w;
    uint32_t ni = 0;

    for (uint32_t k = 0; k < ts->c_n; k++)
        t->lidx[k] = f->cn[ts->c_off + k].left >= 0 ? (int32_t)ni++ : -1;
    ts->s_off = (uint32_t)f->n_sn;
    ts->s_n = ni;
    if (ni == 0) {
        ts->root_leaf = f->cn[ts->c_off].thr;
        ts->expect = (double)ts->root_leaf;
        ts->nv = 1;
        return;
    }
    memset(&w, 0, sizeof w);
    w.f = f;
    w.t = t;
    w.sn = f->sn + f->n_sn;
    w.ni = ni;
    w.c_off = ts->c_off;
    sh_visit(&w, (int32_t)ts->c_off);
    f->n_sn += ni;
    ts->expect = w.expect;
    /* m = 4 nv points are exact for paths of up to 2m = 8 nv distinct features. */
    ts->nv = (uint8_t)((w.max_dist + 7) / 8 > 0 ? (w.max_dist + 7) / 8 : 1);
    if (w.max_dist > 8 * NV_MAX)
        w.classic = 1;
    ts->classic = (uint8_t)w.classic;
    f->n_repeat += w.n_repeat;
    if (w.classic) {
        ts->nv = 0;
        f->n_classic++;
        if ((size_t)ts->depth + 1 > f->classic_depth)
            f->classic_depth = (size_t)ts->depth + 1;
    } else {
        if (ni > f->max_ni)
            f->max_ni = ni;
        if (ts->nv > f->max_nv)
            f->max_nv = ts->nv;
    }
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

static ch_err quad_init(ch_forest *f, ch_error *err)
{
    size_t n = (size_t)NV_MAX * (NV_MAX + 1); /* sum over nv of 2 nv vectors */
    v4d *q = alloc_aligned(n * sizeof *q, &f->quad_mem);
    double t[4 * NV_MAX];
    double w[4 * NV_MAX];
    if (q == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (int nv = 1; nv <= NV_MAX; nv++) {
        v4d *at = q + (size_t)nv * (size_t)(nv - 1);
        gauss_legendre(4 * nv, t, w);
        for (int v = 0; v < nv; v++)
            for (int l = 0; l < 4; l++) {
                at[v][l] = t[4 * v + l];
                at[nv + v][l] = w[4 * v + l];
            }
    }
    f->quad = q;
    return CH_OK;
}

static shap_kernel_fn pick_kernel(int avx2);
static int cpu_has_avx2(void);

/* Reads learner.learner_model_param and the objective; sets base margin
 * and the feature count. */
static ch_err read_learner(const ch_json *learner, size_t n_features, ch_forest *f,
                           ch_error *err)
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
        return fail(err, CH_EMODEL, "learner.learner_model_param.num_class: only binary models "
                    "are supported");
    v = ch_json_get(mp, "num_target");
    if (v != NULL && (param_number(v, &d) != 0 || d > 1))
        return fail(err, CH_EMODEL, "learner.learner_model_param.num_target: only one target is "
                    "supported");
    if (param_number(ch_json_get(mp, "num_feature"), &d) != 0 || d < 1 || d != floor(d) ||
        d > 1e9)
        return fail(err, CH_EFORMAT, "learner.learner_model_param.num_feature: missing or not a "
                    "positive whole number");
    if (n_features != 0 && (double)n_features != d)
        return fail(err, CH_EMODEL, "model expects %.0f features, got %zu", d, n_features);
    f->n_features = (size_t)d;
    if (param_number(ch_json_get(mp, "base_score"), &d) != 0)
        return fail(err, CH_EFORMAT, "learner.learner_model_param.base_score: missing or not a "
                    "number");
    bs = (float)d;
    if (!(bs > 0.0f && bs < 1.0f))
        return fail(err, CH_EMODEL, "learner.learner_model_param.base_score: %g is not a "
                    "probability in (0, 1)", d);
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
    if ((rc = need(model, "trees", CH_JSON_ARRAY, "learner.gradient_booster.model", trees,
                   err)) != CH_OK)
        return rc;
    n = ch_json_len(*trees);
    gp = ch_json_get(model, "gbtree_model_param");
    if (gp != NULL) {
        double d;
        const ch_json *nt = ch_json_get(gp, "num_trees");
        if (nt != NULL && (param_number(nt, &d) != 0 || d != (double)n))
            return fail(err, CH_EFORMAT, "learner.gradient_booster.model.gbtree_model_param."
                        "num_trees: does not match the %zu trees", n);
    }
    info = ch_json_get(model, "tree_info");
    if (info != NULL) {
        if (ch_json_typeof(info) != CH_JSON_ARRAY || ch_json_len(info) != n)
            return fail(err, CH_EFORMAT, "learner.gradient_booster.model.tree_info: expected "
                        "an array of %zu entries", n);
        for (size_t i = 0; i < n; i++) {
            long g;
            if (arr_int(info, i, 0, 0, &g) != 0)
                return fail(err, CH_EMODEL, "learner.gradient_booster.model.tree_info[%zu]: "
                            "output group is not 0 (multi-class models are not supported)", i);
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
    for (size_t k = 0; k < f->n_cn; k++)
        n_split += f->cn[k].left >= 0;

    /* The predict and SHAP layouts. */
    f->n_groups = (n_trees + GROUP - 1) / GROUP;
    f->pn = ch_malloc_array(f->n_cn + 1, sizeof *f->pn);
    f->proot = ch_calloc(f->n_groups * GROUP + 1, sizeof *f->proot);
    f->gdepth = ch_calloc(f->n_groups + 1, sizeof *f->gdepth);
    f->sn = ch_malloc_array(n_split + 1, sizeof *f->sn);
    if (f->pn == NULL || f->proot == NULL || f->gdepth == NULL || f->sn == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    f->pn[0].thr = NAN;
    f->pn[0].feat = PN_DEFAULT_LEFT;
    f->pn[0].left = 0;
    f->pn[0].leaf = 0.0f;
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
    if ((rc = quad_init(f, err)) != CH_OK)
        goto done;
    f->use_avx2 = cpu_has_avx2();
    f->kernel = pick_kernel(f->use_avx2);
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
    ch_free(f->proot);
    ch_free(f->gdepth);
    ch_free(f->sn);
    ch_free(f->quad_mem);
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

/* One step down from node 'p': right iff float(x) >= thr, or x is missing
 * and the default is right. The same rule as XGBoost's (left iff x < thr). */
static inline uint32_t step(const pnode *pn, uint32_t p, const double *x)
{
    const pnode *nd = &pn[p];
    float xv = (float)x[nd->feat & ~PN_DEFAULT_LEFT];
    uint32_t right = (uint32_t)(xv >= nd->thr) | ((uint32_t)(xv != xv) & ~(nd->feat >> 31) & 1u);
    return nd->left + right;
}

CH_API double ch_forest_predict(const ch_forest *f, const double *x)
{
    const pnode *pn = f->pn;
    float acc = f->base_f;
    for (size_t g = 0; g < f->n_groups; g++) {
        const uint32_t *r = f->proot + g * GROUP;
        uint32_t i0 = r[0], i1 = r[1], i2 = r[2], i3 = r[3];
        uint32_t i4 = r[4], i5 = r[5], i6 = r[6], i7 = r[7];
        size_t k = f->n_trees - g * GROUP;
        for (unsigned s = f->gdepth[g]; s > 0; s--) {
            i0 = step(pn, i0, x);
            i1 = step(pn, i1, x);
            i2 = step(pn, i2, x);
            i3 = step(pn, i3, x);
            i4 = step(pn, i4, x);
            i5 = step(pn, i5, x);
            i6 = step(pn, i6, x);
            i7 = step(pn, i7, x);
        }
        if (k >= GROUP) {
            /* In tree order and in float, as XGBoost adds them. */
            acc += pn[i0].leaf;
            acc += pn[i1].leaf;
            acc += pn[i2].leaf;
            acc += pn[i3].leaf;
            acc += pn[i4].leaf;
            acc += pn[i5].leaf;
            acc += pn[i6].leaf;
            acc += pn[i7].leaf;
        } else {
            uint32_t idx[GROUP] = {i0, i1, i2, i3, i4, i5, i6, i7};
            for (size_t j = 0; j < k; j++)
                acc += pn[idx[j]].leaf;
        }
    }
    return (double)acc;
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
 * Adds the contributions of one tree with 'ni' split nodes 'nd' for row
 * 'x' to 'acc' (one vector per feature; the lanes are summed at the end)
 * and returns the value of the leaf 'x' reaches. 'nv' vectors of
 * quadrature nodes 'tq' and weights 'wq'; 'pex', 'q' ((ni + 1) * nv
 * vectors), 'oe' (2 ni + 1) and 'hp' (ni + 1) are scratch. Slot 'ni' of
 * 'q' and 'pex' stands for any leaf: its q stays 0 (the leaf value is
 * added from the parent's record), its pex is written and never read.
 *
 * Per split node i with feature k, children c in {left, right}:
 *   oe[2i + c]  O' of the edge: x satisfies every split on k down to c
 *   hp[i]       1 when i is on x's path (to find the leaf x reaches)
 *   pex[i]      W(t) * product of the path's factors Z + t (O - Z) except k's
 *   q[i]        sum over leaves below i of value * factors below i (relative
 *               to i's own factor for k, which repeat nodes divide out)
 * Always inlined into one function per instruction set, with 'nv' a
 * constant where it is 1.
 */
static inline __attribute__((always_inline)) float
shap_tree_body(const snode *nd, uint32_t ni, int nv, const double *x, const v4d *tq,
               const v4d *wq, v4d *pex, v4d *q, uint8_t *oe, uint8_t *hp, v4d *acc)
{
    const v4d zero = {0.0, 0.0, 0.0, 0.0};
    float hot = 0.0f;
    size_t unv = (size_t)nv;

    for (size_t v = 0; v < unv; v++) {
        pex[v] = wq[v];
        q[ni * unv + v] = zero;
    }
    hp[0] = 1;
    oe[2 * (size_t)ni] = 1;

    /* Top-down: directions, O' of every edge, pex of every split node. */
    for (uint32_t i = 0; i < ni; i++) {
        const snode *s = &nd[i];
        uint32_t bits = s->bits;
        float xv = (float)x[s->feat];
        uint32_t gr = (uint32_t)(xv >= s->thr) | ((uint32_t)(xv != xv) & ~bits & SN_DEFAULT_LEFT);
        uint32_t gl = gr ^ 1u;
        uint32_t pe = bits >> SN_EDGE_SHIFT;
        uint32_t op = oe[pe];
        uint32_t ol = op & gl;
        uint32_t orr = op & gr;
        uint32_t h = hp[i];
        uint32_t cl = (bits & SN_LEFT_SPLIT) ? i + 1 : ni;
        uint32_t cr = s->right;
        v4d *pi = pex + (size_t)i * unv;
        v4d *pl = pex + (size_t)cl * unv;
        v4d *pr = pex + (size_t)cr * unv;
        double al = (double)s->a[0];
        double ar = (double)s->a[1];
        double bl = (double)ol - al;
        double br = (double)orr - ar;

        if (bits & SN_REPEAT) {
            /* Divide out the factor of this feature from its earlier split. */
            double zp = (double)nd[pe >> 1].a[pe & 1];
            double c = (double)op - zp;
            for (size_t v = 0; v < unv; v++)
                pi[v] = pi[v] / (zp + tq[v] * c);
        }
        oe[2 * (size_t)i] = (uint8_t)ol;
        oe[2 * (size_t)i + 1] = (uint8_t)orr;
        hp[cl] = (uint8_t)(h & gl);
        hp[cr] = (uint8_t)(h & gr);
        /* Exactly one leaf per tree is on the path; all other terms are 0. */
        hot += (float)(h & gl) * s->v[0];
        hot += (float)(h & gr) * s->v[1];
        for (size_t v = 0; v < unv; v++) {
            v4d p = pi[v];
            pl[v] = p * (al + tq[v] * bl);
            pr[v] = p * (ar + tq[v] * br);
        }
    }

    /* Bottom-up: q of every split node, and its feature's share. */
    for (uint32_t i = ni; i-- > 0;) {
        const snode *s = &nd[i];
        uint32_t bits = s->bits;
        uint32_t cl = (bits & SN_LEFT_SPLIT) ? i + 1 : ni;
        uint32_t cr = s->right;
        const v4d *ql = q + (size_t)cl * unv;
        const v4d *qr = q + (size_t)cr * unv;
        const v4d *pi = pex + (size_t)i * unv;
        v4d *qi = q + (size_t)i * unv;
        v4d *ak = acc + s->feat;
        double al = (double)s->a[0];
        double ar = (double)s->a[1];
        double bl = (double)oe[2 * (size_t)i] - al;
        double br = (double)oe[2 * (size_t)i + 1] - ar;
        double vl = (double)s->v[0];
        double vr = (double)s->v[1];

        if (!(bits & SN_REPEAT)) {
            for (size_t v = 0; v < unv; v++) {
                v4d l = ql[v] + vl;
                v4d r = qr[v] + vr;
                v4d d = bl * l + br * r;
                qi[v] = (al * l + ar * r) + tq[v] * d;
                *ak += pi[v] * d;
            }
        } else {
            uint32_t pe = bits >> SN_EDGE_SHIFT;
            double zp = (double)nd[pe >> 1].a[pe & 1];
            double c = (double)oe[pe] - zp;
            for (size_t v = 0; v < unv; v++) {
                v4d l = ql[v] + vl;
                v4d r = qr[v] + vr;
                v4d d = bl * l + br * r;
                v4d qq = ((al * l + ar * r) + tq[v] * d) / (zp + tq[v] * c);
                qi[v] = qq;
                *ak += pi[v] * (d - c * qq);
            }
        }
    }
    return hot;
}

static float shap_tree_generic(const snode *nd, uint32_t ni, int nv, const double *x,
                               const v4d *tq, const v4d *wq, v4d *pex, v4d *q, uint8_t *oe,
                               uint8_t *hp, v4d *acc)
{
    if (nv == 1)
        return shap_tree_body(nd, ni, 1, x, tq, wq, pex, q, oe, hp, acc);
    return shap_tree_body(nd, ni, nv, x, tq, wq, pex, q, oe, hp, acc);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same code with 256-bit registers: one instruction per v4d operation
 * instead of two. Only called when the CPU has AVX2. The arithmetic is
 * the same IEEE operations in the same order (no contraction into FMA in
 * ISO C mode), so both kernels give bit-identical results. */
__attribute__((target("avx2"))) static float
shap_tree_avx2(const snode *nd, uint32_t ni, int nv, const double *x, const v4d *tq,
               const v4d *wq, v4d *pex, v4d *q, uint8_t *oe, uint8_t *hp, v4d *acc)
{
    if (nv == 1)
        return shap_tree_body(nd, ni, 1, x, tq, wq, pex, q, oe, hp, acc);
    return shap_tree_body(nd, ni, nv, x, tq, wq, pex, q, oe, hp, acc);
}

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}

static shap_kernel_fn pick_kernel(int avx2)
{
    return avx2 ? shap_tree_avx2 : shap_tree_generic;
}
#else
static int cpu_has_avx2(void)
{
    return 0;
}

static shap_kernel_fn pick_kernel(int avx2)
{
    (void)avx2;
    return shap_tree_generic;
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
    if (ts->s_n > 0 && n_scratch > 0) {
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

CH_API ch_err ch_forest_ws_new(const ch_forest *f, ch_forest_ws **out, ch_error *err)
{
    ch_forest_ws *ws;
    size_t nv = f->max_nv > 0 ? (size_t)f->max_nv : 1;
    size_t slots = f->max_ni + 1;
    size_t n_path = f->classic_depth > 0 ? classic_path_len(f->classic_depth) : 0;
    size_t n_vec;
    size_t bytes;
    unsigned char *p;

    /* Overflow: every factor is bounded by the loader's limits. */
    n_vec = 2 * slots * nv + f->n_features;
    bytes = n_vec * sizeof(v4d) + n_path * sizeof(path_el) + 3 * slots + 64;
    ws = ch_calloc(1, sizeof *ws);
    if (ws == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    p = alloc_aligned(bytes, &ws->mem);
    if (p == NULL) {
        ch_free(ws);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    ws->max_ni = f->max_ni;
    ws->max_nv = (int)nv;
    ws->n_feat = f->n_features;
    ws->n_path = n_path;
    ws->pex = (v4d *)(void *)p;
    ws->q = ws->pex + slots * nv;
    ws->acc = ws->q + slots * nv;
    p = (unsigned char *)(ws->acc + f->n_features);
    ws->path = n_path > 0 ? (path_el *)(void *)p : NULL;
    p += n_path * sizeof(path_el);
    ws->oe = p;
    ws->hp = p + 2 * slots;
    *out = ws;
    return CH_OK;
}

CH_API void ch_forest_ws_free(ch_forest_ws *ws)
{
    if (ws == NULL)
        return;
    ch_free(ws->mem);
    ch_free(ws);
}

/*
 * Runs the kernel (or the classic recursion) over every tree, adds the
 * reached leaves to the margin in float exactly as ch_forest_predict()
 * does, and closes with the bias that makes the sum come out at that
 * margin (see the top of the file).
 */
CH_API double ch_forest_shap(const ch_forest *f, const double *x, double *phi, ch_forest_ws *ws)
{
    const v4d zero = {0.0, 0.0, 0.0, 0.0};
    size_t nf = f->n_features;
    float mf = f->base_f;
    double md = (double)f->base_f;

    CH_ASSERT(ws->max_ni >= f->max_ni && ws->max_nv >= f->max_nv && ws->n_feat >= nf &&
              (f->classic_depth == 0 || ws->n_path >= classic_path_len(f->classic_depth)));
    for (size_t k = 0; k < nf; k++) {
        ws->acc[k] = zero;
        phi[k] = 0.0;
    }
    for (size_t ti = 0; ti < f->n_trees; ti++) {
        const tree_info *ts = &f->trees[ti];
        float hot;
        if (ts->s_n == 0) {
            hot = ts->root_leaf;
        } else if (ts->classic) {
            hot = classic_tree(f, ti, x, phi, ws->path, ws->n_path);
        } else {
            const v4d *wq;
            const v4d *tq = quad_at(f, ts->nv, &wq);
            hot = f->kernel(f->sn + ts->s_off, ts->s_n, ts->nv, x, tq, wq, ws->pex, ws->q,
                            ws->oe, ws->hp, ws->acc);
        }
        mf += hot;
        md += (double)hot;
    }
    for (size_t k = 0; k < nf; k++) {
        v4d a = ws->acc[k];
        phi[k] += (a[0] + a[1]) + (a[2] + a[3]);
    }
    phi[nf] = f->bias + ((double)mf - md);
    return (double)mf;
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

const char *ch__forest_kernel(const ch_forest *f)
{
    return f->use_avx2 ? "avx2" : "generic";
}

int ch__forest_set_kernel(ch_forest *f, const char *name)
{
    if (strcmp(name, "generic") == 0) {
        f->use_avx2 = 0;
    } else if (strcmp(name, "avx2") == 0 && cpu_has_avx2()) {
        f->use_avx2 = 1;
    } else {
        return -1;
    }
    f->kernel = pick_kernel(f->use_avx2);
    return 0;
}

void ch__forest_get_stats(const ch_forest *f, ch__forest_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_nodes = f->n_cn;
    out->n_internal = f->n_sn;
    out->n_repeat = f->n_repeat;
    out->n_classic_trees = f->n_classic;
    out->max_depth = f->max_depth;
    out->quad_points = (size_t)(4 * f->max_nv);
    out->model_bytes = f->n_cn * sizeof(cnode) + f->n_pn * sizeof(pnode) + f->n_sn * sizeof(snode);
}
