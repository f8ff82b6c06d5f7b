#include "flamegraph.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pprof_find.h"

#define ROW 16
#define HEADER 58
#define FOOTER 24
#define MIN_PX 0.1

struct node {
    char *name;            /* the frame label, as in collapsed output */
    int64_t value;         /* this frame and everything above it */
    struct node **kids;
    size_t nkids, cap;
};

struct tree {
    struct node root;
    json_t *index;         /* "parent-address name" -> child, so wide nodes stay cheap */
    int depth;
};

/* ---- building the tree from the collapsed lines -------------------------------------------- */

static struct node *child(struct tree *t, struct node *parent, const char *name, size_t len)
{
    char *key = NULL;
    if (asprintf(&key, "%p %.*s", (void *)parent, (int)len, name) < 0)
        return NULL;
    json_t *known = json_object_get(t->index, key);
    struct node *n = known ? (struct node *)(uintptr_t)json_integer_value(known) : NULL;
    if (n == NULL) {
        n = calloc(1, sizeof(*n));
        if (n == NULL || (n->name = strndup(name, len)) == NULL) {
            free(n);
            free(key);
            return NULL;
        }
        if (parent->nkids == parent->cap) {
            size_t cap = parent->cap ? parent->cap * 2 : 4;
            struct node **kids = realloc(parent->kids, cap * sizeof(*kids));
            if (kids == NULL) {
                free(n->name);
                free(n);
                free(key);
                return NULL;
            }
            parent->kids = kids;
            parent->cap = cap;
        }
        parent->kids[parent->nkids++] = n;
        json_object_set_new(t->index, key, json_integer((json_int_t)(uintptr_t)n));
    }
    free(key);
    return n;
}

static int add_line(struct tree *t, char *line)
{
    char *space = strrchr(line, ' ');
    if (space == NULL)
        return -EINVAL;
    int64_t value = strtoll(space + 1, NULL, 10);
    *space = '\0';
    struct node *at = &t->root;
    int depth = 0;
    /* Every node's value is part of the root's: checking the root's sum covers them all. */
    if (__builtin_add_overflow(at->value, value, &at->value))
        return -EINVAL;
    for (char *frame = line; frame != NULL;) {
        char *semi = strchr(frame, ';');
        size_t len = semi ? (size_t)(semi - frame) : strlen(frame);
        if ((at = child(t, at, frame, len)) == NULL)
            return -ENOMEM;
        at->value += value;
        depth++;
        frame = semi ? semi + 1 : NULL;
    }
    if (depth > t->depth)
        t->depth = depth;
    return 0;
}

static int build(struct tree *t, const Perftools__Profiles__Profile *p,
                 const struct pyprof_collapsed_options *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL)
        return -ENOMEM;
    int rc = pyprof_collapsed_write(p, o, mem);
    if (fclose(mem) != 0 && rc == 0)
        rc = -ENOMEM;
    for (char *save = NULL, *l = rc ? NULL : strtok_r(text, "\n", &save); l && rc == 0;
         l = strtok_r(NULL, "\n", &save))
        rc = add_line(t, l);
    free(text);
    return rc;
}

static void free_node(struct node *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        free_node(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    free(n->name);
}

static int name_compare(const void *a, const void *b)
{
    return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

/* ---- colours --------------------------------------------------------------------------------- */

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Where the code lives, from the file in "name (file:line)". */
static const char *colour(const char *label, char *buf, size_t size)
{
    const char *open = strrchr(label, '(');
    uint32_t h = hash(label);
    int jitter = (int)(h % 40);
    if (label[0] == '[' || open == NULL) {                       /* pseudo frames */
        snprintf(buf, size, "rgb(%d,%d,%d)", 170 + jitter / 2, 170 + jitter / 2, 170 + jitter / 2);
    } else if (strstr(open, "site-packages/") || strstr(open, "dist-packages/")) {
        snprintf(buf, size, "rgb(%d,%d,%d)", 80 + jitter, 190 + jitter / 2, 90);   /* third party */
    } else if (strstr(open, "/lib/python") || strstr(open, "<frozen")) {
        snprintf(buf, size, "rgb(%d,%d,%d)", 90 + jitter, 150 + jitter, 230);       /* stdlib */
    } else {
        snprintf(buf, size, "rgb(%d,%d,%d)", 230, 110 + jitter * 2, 40 + jitter);    /* app */
    }
    return buf;
}

/* ---- SVG --------------------------------------------------------------------------------------- */

static void put_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default:
            if ((unsigned char)*s < 0x20)
                fputc(' ', out);   /* control characters are not allowed in XML 1.0 */
            else
                fputc(*s, out);
        }
    }
}

struct render {
    FILE *out;
    const struct pyprof_flamegraph_options *o;
    int width, height, depth;
    double total;
    struct tree *base;        /* diff: the "before" tree, or NULL */
    double base_total;
};

/* The child of `parent` (in the base tree) with this name, or NULL. */
static struct node *base_child(struct tree *t, struct node *parent, const char *name)
{
    char *key = NULL;
    if (parent == NULL || asprintf(&key, "%p %s", (void *)parent, name) < 0)
        return NULL;
    json_t *known = json_object_get(t->index, key);
    free(key);
    return known ? (struct node *)(uintptr_t)json_integer_value(known) : NULL;
}

/* Red for growth, blue for shrinkage of the frame's share of the total, white if equal. */
static const char *diff_colour(double delta, char *buf, size_t size)
{
    double k = delta > 0 ? delta : -delta;
    int fade = 255 - (int)(k >= 0.05 ? 200 : k / 0.05 * 200);
    if (delta > 0)
        snprintf(buf, size, "rgb(255,%d,%d)", fade, fade);
    else
        snprintf(buf, size, "rgb(%d,%d,255)", fade, fade);
    return buf;
}

static void format_value(const struct render *r, int64_t v, char *buf, size_t size)
{
    if (r->o->stacks.samples)
        snprintf(buf, size, "%lld samples", (long long)v);
    else if (v >= 1000000)
        snprintf(buf, size, "%.2f s", (double)v / 1e6);
    else
        snprintf(buf, size, "%.2f ms", (double)v / 1e3);
}

static void put_frame(struct render *r, const struct node *n, const struct node *base,
                      double x, int d)
{
    double px = x / r->total * r->width, pw = (double)n->value / r->total * r->width;
    double share = (double)n->value / r->total;
    int y = r->o->icicle ? HEADER + d * ROW : r->height - FOOTER - (d + 1) * ROW;
    char fill[40], value[48], change[64] = "";
    format_value(r, n->value, value, sizeof(value));
    if (r->base != NULL) {
        double before = base ? (double)base->value / r->base_total : 0.0;
        snprintf(change, sizeof(change), ", %+.2f%% of total since before", 100.0 * (share - before));
        diff_colour(share - before, fill, sizeof(fill));
    } else {
        colour(n->name, fill, sizeof(fill));
    }
    /* The details live in an attribute, not in a <title> per frame: Chromium took minutes
     * to load 50,000 <title> elements (seconds without them). */
    fprintf(r->out, "<g class=\"f\" data-x=\"%.0f\" data-w=\"%lld\" data-d=\"%d\" data-t=\"", x,
            (long long)n->value, d);
    put_escaped(r->out, n->name);
    fprintf(r->out, " — %s, %.2f%%%s\"><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" "
            "height=\"%d\" fill=\"%s\" rx=\"2\"/><text x=\"%.2f\" y=\"%d\"></text></g>\n",
            value, 100.0 * share, change, px, y, pw, ROW - 1, fill, px + 3, y + ROW - 4);
}

/* Depth-first, children in name order; frames too narrow to see are not drawn (their
 * width stays inside their parent's). `base` is the same path in the diff base, if any. */
static void put_tree(struct render *r, struct node *n, struct node *base, double x, int d)
{
    if (d >= 0)
        put_frame(r, n, base, x, d);
    if (n->nkids > 1)
        qsort(n->kids, n->nkids, sizeof(*n->kids), name_compare);
    for (size_t i = 0; i < n->nkids; i++) {
        struct node *k = n->kids[i];
        if ((double)k->value / r->total * r->width >= MIN_PX)
            put_tree(r, k, r->base ? base_child(r->base, base, k->name) : NULL, x, d + 1);
        x += (double)k->value;
    }
}

static const char *comment(const Perftools__Profiles__Profile *p, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < p->n_comment; i++) {
        const char *s = pyprof_pprof_string(p, p->comment[i]);
        if (s && strncmp(s, key, klen) == 0 && s[klen] == '=')
            return s + klen + 1;
    }
    return NULL;
}

static void put_header(struct render *r, const Perftools__Profiles__Profile *p, int64_t sum)
{
    const char *cmd = comment(p, "cmdline"), *pid = comment(p, "pid"), *mode = comment(p, "mode");
    char total[48];
    format_value(r, sum, total, sizeof(total));
    fprintf(r->out, "<text class=\"title\" x=\"%d\" y=\"22\" text-anchor=\"middle\">",
            r->width / 2);
    if (r->o->title)
        put_escaped(r->out, r->o->title);
    else
        put_escaped(r->out, cmd && *cmd ? cmd : "pyprof profile");
    fprintf(r->out, "</text>\n<text class=\"sub\" x=\"%d\" y=\"40\" text-anchor=\"middle\">",
            r->width / 2);
    if (pid)
        fprintf(r->out, "pid ");
    put_escaped(r->out, pid ? pid : "");
    fprintf(r->out, "%s%s mode, %.1f s profiled, total %s", pid ? " · " : "", mode ? mode : "cpu",
            (double)p->duration_nanos / 1e9, total);
    fprintf(r->out, "</text>\n<text id=\"reset\" class=\"btn\" x=\"10\" y=\"22\" "
            "onclick=\"resetZoom()\" style=\"opacity:0\">Reset zoom</text>\n"
            "<text id=\"search\" class=\"btn\" x=\"%d\" y=\"22\" text-anchor=\"end\" "
            "onclick=\"search()\">Search</text>\n"
            "<text id=\"matched\" class=\"sub\" x=\"%d\" y=\"%d\" text-anchor=\"end\"></text>\n"
            "<text id=\"details\" class=\"sub\" x=\"10\" y=\"%d\"> </text>\n",
            r->width - 10, r->width - 10, r->height - 6, r->height - 6);
}

/* Every frame's numbers, elements and label are read once (init); a redraw touches only
 * what changes, so that zoom and search stay quick with tens of thousands of frames. */
static const char SCRIPT[] =
    "<script><![CDATA[\n"
    "var W, TOTAL, F = [], zx = 0, zw = 0, zd = 0, re = null;\n"
    "function init() {\n"
    "  W = +document.documentElement.getAttribute('data-width');\n"
    "  TOTAL = +document.documentElement.getAttribute('data-total');\n"
    "  var details = document.getElementById('details');\n"
    "  document.querySelectorAll('g.f').forEach(function (g) {\n"
    "    var t = g.getAttribute('data-t'), f = {\n"
    "      g: g, rect: g.firstChild, text: g.lastChild, details: t,\n"
    "      name: t.substring(0, t.lastIndexOf(' \\u2014 ')), x: +g.getAttribute('data-x'),\n"
    "      w: +g.getAttribute('data-w'), d: +g.getAttribute('data-d'),\n"
    "      shown: true, up: false, hit: false, label: '', px: -1, pw: -1 };\n"
    "    F.push(f);\n"
    "    g.addEventListener('click', function () { zoom(f); });\n"
    "    g.addEventListener('mouseover', function () { details.textContent = f.details; });\n"
    "  });\n"
    "  zw = TOTAL; draw();\n"
    "}\n"
    "function label(f, w) {\n"
    "  var fit = Math.floor((w - 6) / 7), name = f.name;\n"
    "  var text = fit < 3 ? '' : (name.length <= fit ? name : name.substring(0, fit - 2) + '..');\n"
    "  if (text !== f.label) { f.text.textContent = text; f.label = text; }\n"
    "}\n"
    "function show(f, on) {\n"
    "  if (f.shown !== on) { f.g.style.display = on ? '' : 'none'; f.shown = on; }\n"
    "}\n"
    "function draw() {\n"
    "  F.forEach(function (f) {\n"
    "    var px, pw, up = f.d < zd, hit = re !== null && re.test(f.name);\n"
    "    if (f.x + f.w <= zx || f.x >= zx + zw) { show(f, false); return; }\n"
    "    if (up) { px = 0; pw = W; } else { px = (f.x - zx) / zw * W; pw = f.w / zw * W; }\n"
    "    if (pw < 0.1) { show(f, false); return; }\n"
    "    show(f, true);\n"
    "    if (up !== f.up) { f.g.classList.toggle('up', up); f.up = up; }\n"
    "    if (px !== f.px || pw !== f.pw) {\n"
    "      f.rect.setAttribute('x', px); f.rect.setAttribute('width', pw);\n"
    "      f.text.setAttribute('x', px + 3); f.px = px; f.pw = pw;\n"
    "    }\n"
    "    label(f, pw);\n"
    "    if (hit !== f.hit) { f.rect.classList.toggle('hit', hit); f.hit = hit; }\n"
    "  });\n"
    "  document.getElementById('reset').style.opacity = zw < TOTAL ? 1 : 0;\n"
    "}\n"
    "function zoom(f) { zx = f.x; zw = f.w; zd = f.d; draw(); }\n"
    "function resetZoom() { zx = 0; zw = TOTAL; zd = 0; draw(); }\n"
    "function search() {\n"
    "  var text = prompt('Search frames (regular expression); empty to clear', '');\n"
    "  if (text === null) return;\n"
    "  try { re = text === '' ? null : new RegExp(text); } catch (e) { alert(e); return; }\n"
    "  var spans = [];\n"
    "  if (re) F.forEach(function (f) { if (re.test(f.name)) spans.push([f.x, f.x + f.w]); });\n"
    "  spans.sort(function (a, b) { return a[0] - b[0]; });\n"
    "  var sum = 0, end = -1;\n"
    "  spans.forEach(function (s) {   /* nested matches count once */\n"
    "    if (s[0] >= end) { sum += s[1] - s[0]; end = s[1]; }\n"
    "    else if (s[1] > end) { sum += s[1] - end; end = s[1]; }\n"
    "  });\n"
    "  document.getElementById('matched').textContent =\n"
    "    re ? 'Matched: ' + (100 * sum / TOTAL).toFixed(2) + '%' : '';\n"
    "  draw();\n"
    "}\n"
    "]]></script>\n";

static const char STYLE[] =
    "<style>\n"
    "text { font-family: monospace; font-size: 12px; fill: #000; }\n"
    ".title { font-size: 16px; } .sub { fill: #333; }\n"
    ".btn { cursor: pointer; text-decoration: underline; fill: #1a4fb0; }\n"
    "g.f { cursor: pointer; } g.f:hover rect { stroke: #000; stroke-width: 0.5; }\n"
    "g.f text { pointer-events: none; }\n"
    "rect.hit { fill: rgb(230,0,230) !important; } g.up rect { opacity: 0.55; }\n"
    "</style>\n";

int pyprof_flamegraph_write(const Perftools__Profiles__Profile *p,
                            const struct pyprof_flamegraph_options *o, FILE *out)
{
    struct tree t = {.root = {.name = NULL}}, base = {.root = {.name = NULL}};
    t.index = json_object();
    base.index = json_object();
    int rc = t.index && base.index ? build(&t, p, &o->stacks) : -ENOMEM;
    if (rc == 0 && o->diff_base != NULL)
        rc = build(&base, o->diff_base, &o->stacks);
    if (rc == 0) {
        struct render r = {out, o, o->width > 0 ? o->width : 1200, 0, t.depth,
                           t.root.value > 0 ? (double)t.root.value : 1.0,
                           o->diff_base ? &base : NULL,
                           base.root.value > 0 ? (double)base.root.value : 1.0};
        r.height = HEADER + FOOTER + (t.depth > 0 ? t.depth : 1) * ROW;
        fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                     "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                     "height=\"%d\" viewBox=\"0 0 %d %d\" data-width=\"%d\" data-total=\"%lld\" "
                     "onload=\"init()\">\n%s%s"
                     "<rect width=\"100%%\" height=\"100%%\" fill=\"#fdfdf6\"/>\n",
                r.width, r.height, r.width, r.height, r.width, (long long)t.root.value,
                STYLE, SCRIPT);
        put_header(&r, p, t.root.value);
        if (t.root.value > 0)
            put_tree(&r, &t.root, o->diff_base ? &base.root : NULL, 0, -1);
        else
            fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no samples</text>\n",
                    r.width / 2, HEADER + ROW);
        fputs("</svg>\n", out);
        if (ferror(out))
            rc = -EIO;
    }
    free_node(&t.root);
    free_node(&base.root);
    json_decref(t.index);
    json_decref(base.index);
    return rc;
}
