/* `nsfast ls`: the rows as libsmartcols prints lsns's table: the columns'
 * widths, alignment, the tree drawn in one column, the escapes of a table
 * cell and of a raw one, the cut of COMMAND on a terminal, and JSON. */
#include "cli.h"
#include "cli_ls.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Whether lsns (setlocale(LC_ALL, "")) would run in a UTF-8 locale. */
static int utf8_locale(void)
{
    static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (unsigned i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
    }
    return 0;
}

/* The length of the well-formed UTF-8 sequence at s and its code point in
 * *cp; 0 when the bytes there are not one. */
static int utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (n < (size_t)len || s[1] < lo || s[1] > hi)
        return 0;
    unsigned v = c & (0xff >> (len + 1));
    for (int i = 1; i < len; i++) {
        if (i > 1 && (s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

/* Whether a code point past ASCII is printable: not a control, a format
 * character, a separator but the space, a surrogate or a private use one. */
static int printable(unsigned cp)
{
    static const unsigned ranges[][2] = {
        {0x80, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd},
        {0x70f, 0x70f}, {0x890, 0x891}, {0x8e2, 0x8e2}, {0x1680, 0x1680}, {0x180e, 0x180e},
        {0x2000, 0x200f}, {0x2028, 0x202f}, {0x205f, 0x2064}, {0x2066, 0x206f},
        {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfeff, 0xfeff}, {0xfff9, 0xfffb},
        {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3},
        {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
    };
    if ((cp & 0xfffe) == 0xfffe)   /* a noncharacter */
        return 0;
    for (unsigned i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return 0;
    return 1;
}

static void hex_byte(struct ls_buf *out, unsigned char b)
{
    static const char digits[] = "0123456789abcdef";
    char e[4] = {'\\', 'x', digits[b >> 4], digits[b & 15]};
    ls_put(out, e, 4);
}

/* A cell as libsmartcols shows it in a table (mbs_safe_encode): what is not
 * printable, each byte that is not UTF-8 and, outside a UTF-8 locale, each
 * byte that is not ASCII, as \xHH; a backslash before an x as \x5c. */
static void safe(struct ls_buf *out, const char *text, size_t n, int utf8)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        int len;
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'x') {
            hex_byte(out, s[i++]);
        } else if (s[i] < 0x80) {
            if (s[i] >= 0x20 && s[i] < 0x7f)
                ls_putc(out, (char)s[i]);
            else
                hex_byte(out, s[i]);
            i++;
        } else if ((len = utf8_seq(s + i, n - i, &cp)) && utf8 && printable(cp)) {
            ls_put(out, s + i, (size_t)len);
            i += (size_t)len;
        } else {
            for (int k = 0; k < (len ? len : 1); k++)
                hex_byte(out, s[i++]);
        }
    }
}

/* A cell of -r output (fputs_nonblank): every byte but the ASCII graphic
 * ones, and the backslash, as \xHH. */
static void raw_cell(struct ls_buf *out, const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)text[i];
        if (b >= 0x21 && b <= 0x7e && b != '\\')
            ls_putc(out, (char)b);
        else
            hex_byte(out, b);
    }
}

/* A JSON string as util-linux writes it: only ", \ and controls escaped. */
static void json_string(struct ls_buf *out, const char *text, size_t n)
{
    ls_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" :
                        c == '\t' ? "\\t" : c == '\n' ? "\\n" : c == '\f' ? "\\f" :
                        c == '\r' ? "\\r" : 0;
        if (e)
            ls_puts(out, e);
        else if (c < 0x20)
            ls_printf(out, "\\u00%02x", c);
        else
            ls_putc(out, (char)c);
    }
    ls_putc(out, '"');
}

/* characters, not bytes: the escaped text is well-formed UTF-8 */
static size_t width_of(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xc0) != 0x80;
    return w;
}

/* the first w characters of s, as a byte count */
static size_t cut_at(const char *s, size_t n, size_t w)
{
    size_t i = 0;
    for (size_t seen = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && seen++ == w)
            break;
    }
    return i;
}

/* ---------------------------------------------------------------- the tree */

/* The index of the column that draws the tree, -1 when none does. */
static int tree_column(const struct ls_args *a)
{
    int col = a->tree == TREE_PROCESS ? COL_COMMAND :
              a->tree == TREE_OWNER || a->tree == TREE_PARENT ? COL_NS : -1;
    for (int k = 0; col >= 0 && k < a->ncolumns; k++)
        if (a->columns[k] == col)
            return k;
    return -1;
}

static int is_last(const struct ls_rows *rows, int r)
{
    const struct ls_row *up = &rows->r[rows->r[r].parent];
    return up->children[up->nchildren - 1] == r;
}

/* What continues below a row in the tree column: for it and each ancestor,
 * a vertical where more siblings follow, else blanks. */
static void verticals(struct ls_buf *out, const struct ls_rows *rows, int r, int ascii)
{
    if (rows->r[r].parent < 0)
        return;
    verticals(out, rows, rows->r[r].parent, ascii);
    ls_puts(out, is_last(rows, r) ? "  " : ascii ? "| " : "\u2502 ");
}

/* The drawing before a row's cell: its ancestors' verticals, then its branch. */
static void art(struct ls_buf *out, const struct ls_rows *rows, int r, int ascii)
{
    if (rows->r[r].parent < 0)
        return;
    verticals(out, rows, rows->r[r].parent, ascii);
    ls_puts(out, is_last(rows, r) ? (ascii ? "`-" : "\u2514\u2500")
                                  : (ascii ? "|-" : "\u251c\u2500"));
}

static void walk(const struct ls_rows *rows, int r, int *order, int *n)
{
    order[(*n)++] = r;
    for (int i = 0; i < rows->r[r].nchildren; i++)
        walk(rows, rows->r[r].children[i], order, n);
}

/* Rows in print order: with a tree column, each root in the order added and
 * its children after it (depth first); without, the order added. */
static int *print_order(const struct ls_rows *rows, int tree)
{
    int *order = ls_alloc(sizeof *order * (size_t)rows->n), n = 0;
    for (int r = 0; r < rows->n; r++) {
        if (!tree)
            order[n++] = r;
        else if (rows->r[r].parent < 0)
            walk(rows, r, order, &n);
    }
    return order;
}

/* ---------------------------------------------------------------- the table */

/* The width libsmartcols fits a table into: the terminal's when stdout is
 * one (TIOCGWINSZ, else $COLUMNS, else 80); 0 when stdout is no terminal. */
static size_t terminal_width(void)
{
    if (!isatty(1))
        return 0;
    struct winsize ws;
    size_t columns = ioctl(1, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
    const char *env = getenv("COLUMNS");
    if (!columns && env && *env && strspn(env, "0123456789") == strlen(env))
        columns = strtoul(env, 0, 10);
    return columns ? columns : 80;
}

/* Narrow the truncatable columns (COMMAND, unless -u) one cell at a time,
 * in column order, down to their heading's width, until the table fits:
 * libsmartcols's reduction for lsns's columns (none has a relative width). */
static void fit(size_t *widths, const struct ls_args *a, const int *trunc, size_t room)
{
    size_t total = (size_t)a->ncolumns - 1;
    for (int k = 0; k < a->ncolumns; k++)
        total += widths[k];
    while (total > room) {
        size_t before = total;
        for (int k = 0; k < a->ncolumns && total > room; k++) {
            if (trunc[k] && widths[k] > strlen(ls_columns[a->columns[k]].name)) {
                widths[k]--;
                total--;
            }
        }
        if (total == before)
            return;
    }
}

struct cell {
    size_t at, len;   /* in the cells' text: escaped, '\n' between lines */
};

static void raw_table(const struct ls_rows *rows, const struct ls_args *a, const int *order,
                      int at, int utf8, struct ls_buf *out)
{
    struct ls_buf value = {0}, text = {0};
    if (!a->noheadings) {
        for (int k = 0; k < a->ncolumns; k++) {
            if (k)
                ls_putc(out, ' ');
            ls_puts(out, ls_columns[a->columns[k]].name);
        }
        ls_putc(out, '\n');
    }
    for (int i = 0; i < rows->n; i++) {
        for (int k = 0; k < a->ncolumns; k++) {
            text.n = 0;
            if (k == at)
                art(&text, rows, order[i], !utf8);
            if (ls_cell(&rows->r[order[i]], a->columns[k], a, &value))
                ls_put(&text, value.p, value.n);
            if (k)
                ls_putc(out, ' ');
            raw_cell(out, text.p, text.n);
        }
        ls_putc(out, '\n');
    }
    free(value.p);
    free(text.p);
}

/* one line of the table: each text padded to its column's width */
static void line(struct ls_buf *out, const struct ls_args *a, const size_t *widths,
                 const int *right, const char *const *texts, const size_t *lens)
{
    static const char spaces[] = "                                ";
    for (int k = 0; k < a->ncolumns; k++) {
        size_t w = width_of(texts[k], lens[k]);
        size_t pad = w < widths[k] ? widths[k] - w : 0;
        if (k)
            ls_putc(out, ' ');
        if (k == a->ncolumns - 1 && !(right[k] && lens[k]))
            pad = 0;
        if (right[k] && lens[k])
            for (; pad; pad -= pad < 32 ? pad : 32)
                ls_put(out, spaces, pad < 32 ? pad : 32);
        ls_put(out, texts[k], lens[k]);
        if (!(right[k] && lens[k]))
            for (; pad; pad -= pad < 32 ? pad : 32)
                ls_put(out, spaces, pad < 32 ? pad : 32);
    }
    ls_putc(out, '\n');
}

/* the n-th line of a cell (0 for the first), *len its length; NULL past the last */
static const char *chunk(const char *text, const struct cell *c, int n, size_t *len)
{
    const char *p = text + c->at, *end = p + c->len;
    for (; n > 0; n--) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return 0;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    return p;
}

void ls_print_table(const struct ls_rows *rows, const struct ls_args *a, struct ls_buf *out)
{
    int utf8 = utf8_locale(), at = tree_column(a), ncol = a->ncolumns;
    int *order = print_order(rows, at >= 0);
    if (a->raw) {
        raw_table(rows, a, order, at, utf8, out);
        free(order);
        return;
    }
    /* every cell escaped, its lines (a multi-line NSFS cell) apart by '\n' */
    struct ls_buf text = {0}, value = {0};
    struct cell *cells = ls_alloc(sizeof *cells * (size_t)rows->n * (size_t)ncol);
    int *nlines = ls_alloc(sizeof *nlines * (size_t)rows->n);
    for (int i = 0; i < rows->n; i++) {
        nlines[i] = 1;
        for (int k = 0; k < ncol; k++) {
            struct cell *c = &cells[(size_t)i * (size_t)ncol + (size_t)k];
            c->at = text.n;
            if (k == at)
                art(&text, rows, order[i], !utf8);
            int col = a->columns[k], lines = 1;
            if (ls_cell(&rows->r[order[i]], col, a, &value)) {
                if (col == COL_NSFS && !a->nowrap) {
                    for (size_t s = 0; s <= value.n;) {
                        size_t e = s;
                        while (e < value.n && value.p[e] != '\n')
                            e++;
                        if (s)
                            ls_putc(&text, '\n'), lines++;
                        safe(&text, value.p + s, e - s, utf8);
                        s = e + 1;
                    }
                } else {
                    safe(&text, value.p, value.n, utf8);
                }
            }
            c->len = text.n - c->at;
            if (lines > nlines[i])
                nlines[i] = lines;
        }
    }
    size_t *widths = ls_alloc(sizeof *widths * (size_t)ncol);
    int *right = ls_alloc(sizeof *right * (size_t)ncol), *trunc = ls_alloc(sizeof *trunc * (size_t)ncol);
    for (int k = 0; k < ncol; k++) {
        const struct ls_column *col = &ls_columns[a->columns[k]];
        for (int i = 0; i < rows->n; i++) {
            const struct cell *c = &cells[(size_t)i * (size_t)ncol + (size_t)k];
            size_t len, w;
            const char *p;
            for (int n = 0; (p = chunk(text.p, c, n, &len)); n++)
                if ((w = width_of(p, len)) > widths[k])
                    widths[k] = w;
        }
        /* libsmartcols: at least the heading (also under -n); the width
         * hint only where the data is at least as wide as the heading */
        size_t heading = strlen(col->name), hint = (size_t)col->hint;
        if (widths[k] < heading)
            widths[k] = heading;
        else if (widths[k] < hint && heading < hint)
            widths[k] = hint;
        right[k] = col->right && k != at;
        trunc[k] = a->columns[k] == COL_COMMAND && !a->notruncate;
    }
    size_t room = terminal_width();
    if (room)
        fit(widths, a, trunc, room);
    const char **texts = ls_alloc(sizeof *texts * (size_t)ncol);
    size_t *lens = ls_alloc(sizeof *lens * (size_t)ncol);
    if (!a->noheadings) {
        for (int k = 0; k < ncol; k++) {
            texts[k] = ls_columns[a->columns[k]].name;
            lens[k] = strlen(texts[k]);
        }
        line(out, a, widths, right, texts, lens);
    }
    struct ls_buf drawn = {0};
    for (int i = 0; i < rows->n; i++) {
        int r = order[i];
        const struct cell *row_cells = &cells[(size_t)i * (size_t)ncol];
        for (int n = 0; n < nlines[i]; n++) {
            size_t len;
            drawn.n = 0;
            ls_puts(&drawn, "");
            if (n && at >= 0 && !chunk(text.p, &row_cells[at], n, &len)) {
                /* the tree goes on beside the extra lines of a cell */
                verticals(&drawn, rows, r, !utf8);
                if (rows->r[r].nchildren && n < nlines[i] - 1)
                    ls_puts(&drawn, utf8 ? "\u2502 " : "| ");
            }
            for (int k = 0; k < ncol; k++) {
                texts[k] = chunk(text.p, &row_cells[k], n, &lens[k]);
                if (!texts[k]) {
                    texts[k] = k == at ? drawn.p : "";
                    lens[k] = k == at ? drawn.n : 0;
                } else if (trunc[k]) {
                    /* cut as libsmartcols cuts a cell wider than its column */
                    lens[k] = cut_at(texts[k], lens[k], widths[k]);
                }
            }
            line(out, a, widths, right, texts, lens);
        }
    }
    free(drawn.p);
    free(texts);
    free(lens);
    free(widths);
    free(right);
    free(trunc);
    free(cells);
    free(nlines);
    free(text.p);
    free(value.p);
    free(order);
}

/* ---------------------------------------------------------------- JSON */

static void json_object(const struct ls_rows *rows, int r, int depth, int tree,
                        const struct ls_args *a, struct ls_buf *value, struct ls_buf *out)
{
    char pad[256];
    int np = 3 * depth < (int)sizeof pad - 1 ? 3 * depth : (int)sizeof pad - 1;
    memset(pad, ' ', (size_t)np);
    pad[np] = 0;
    for (int k = 0; k < a->ncolumns; k++) {
        const struct ls_column *col = &ls_columns[a->columns[k]];
        if (k)
            ls_puts(out, ",\n");
        ls_printf(out, "%s   \"", pad);
        for (const char *p = col->name; *p; p++)
            ls_putc(out, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
        ls_puts(out, "\": ");
        if (!ls_cell(&rows->r[r], a->columns[k], a, value) || !value->n)
            ls_puts(out, "null");
        else if (col->number)
            ls_put(out, value->p, value->n);
        else
            json_string(out, value->p, value->n);
    }
    const struct ls_row *row = &rows->r[r];
    if (!tree || !row->nchildren)
        return;
    ls_printf(out, ",\n%s   \"children\": [\n%s      {\n", pad, pad);
    for (int i = 0; i < row->nchildren; i++) {
        if (i)
            ls_printf(out, "\n%s      },{\n", pad);
        json_object(rows, row->children[i], depth + 2, tree, a, value, out);
    }
    ls_printf(out, "\n%s      }\n%s   ]", pad, pad);
}

/* libsmartcols's JSON: three-space indent, "},{" between objects, children
 * nested in a "children" array when a column draws the tree. */
void ls_print_json(const struct ls_rows *rows, const struct ls_args *a, struct ls_buf *out)
{
    int tree = tree_column(a) >= 0, shown = 0;
    struct ls_buf value = {0};
    ls_puts(out, "{\n   \"namespaces\": [\n");
    for (int r = 0; r < rows->n; r++) {
        if (tree && rows->r[r].parent >= 0)
            continue;
        ls_puts(out, shown++ ? "\n      },{\n" : "      {\n");
        json_object(rows, r, 2, tree, a, &value, out);
    }
    ls_puts(out, shown ? "\n      }\n" : "\n");
    ls_puts(out, "   ]\n}\n");
    free(value.p);
}
