/* `nsfast ls -Q EXPR`: the filter expressions of util-linux 2.40+
 * (libsmartcols): column names, numbers, 'strings' or "strings", the
 * comparisons == != < <= > >= (or eq ne lt le gt ge), =~ and !~ (POSIX
 * extended regular expressions, as libsmartcols matches them), && || !
 * (or and or not), and parentheses.  A comparison of two numbers compares
 * their values; anything else compares text. */
#include "cli.h"
#include "cli_ls.h"

#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind { T_END, T_OP, T_NAME, T_NUM, T_STR };
enum op { OP_EQ, OP_NE, OP_LE, OP_GE, OP_MATCH, OP_NOMATCH, OP_AND, OP_OR, OP_LT, OP_GT,
          OP_NOT, OP_OPEN, OP_CLOSE };
/* in the order the tokenizer tries them: the longest first */
static const char *const symbols[] = {"==", "!=", "<=", ">=", "=~", "!~", "&&", "||",
                                      "<", ">", "!", "(", ")"};
static const struct {
    const char *word;
    enum op op;
} words[] = {{"eq", OP_EQ}, {"ne", OP_NE}, {"lt", OP_LT}, {"le", OP_LE}, {"gt", OP_GT},
             {"ge", OP_GE}, {"and", OP_AND}, {"or", OP_OR}, {"not", OP_NOT}};

struct token {
    enum tok_kind kind;
    enum op op;
    int column;          /* T_NAME */
    char *text;          /* T_NAME (upper case), T_NUM, T_STR */
};

enum node_kind { N_OR, N_AND, N_NOT, N_COMPARE, N_TRUTH, N_COLUMN, N_NUM, N_STR, N_PAREN };
struct node {
    enum node_kind kind;
    enum op op;                 /* N_COMPARE */
    struct node *left, *right;  /* operands; N_NOT, N_PAREN, N_TRUTH: left */
    int column;
    const char *text;
};

struct ls_filter {
    struct node *root;
    unsigned long used;         /* bit per column read */
};

static __attribute__((noreturn)) void parse_error(const char *fmt, const char *what)
{
    nsf_cli_die(LS_PROG, fmt, what);
}

/* ---------------------------------------------------------------- tokens */

static char *copy(const char *s, size_t n)
{
    char *p = ls_alloc(n + 1);
    memcpy(p, s, n);
    return p;
}

static struct token *tokenize(const char *text, int *count)
{
    struct token *out = 0;
    int n = 0;
    for (size_t i = 0; text[i];) {
        char ch = text[i];
        struct token t = {.kind = T_OP, .column = -1};
        if (isspace((unsigned char)ch)) {
            i++;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            const char *end = strchr(text + i + 1, ch);
            if (!end)
                parse_error("failed to parse filter: unterminated string: %s", text + i);
            t.kind = T_STR;
            t.text = copy(text + i + 1, (size_t)(end - text - i - 1));
            i = (size_t)(end - text) + 1;
        } else if (isdigit((unsigned char)ch)) {
            size_t j = i;
            while (isdigit((unsigned char)text[j]) || text[j] == '.')
                j++;
            t.kind = T_NUM;
            t.text = copy(text + i, j - i);
            i = j;
        } else if (isalpha((unsigned char)ch) || ch == '_') {
            size_t j = i;
            while (isalnum((unsigned char)text[j]) || text[j] == '_' || text[j] == '-')
                j++;
            t.kind = T_NAME;
            t.text = copy(text + i, j - i);
            for (unsigned w = 0; w < sizeof words / sizeof *words; w++)
                if (strcasecmp(words[w].word, t.text) == 0) {
                    t.kind = T_OP;
                    t.op = words[w].op;
                }
            for (char *p = t.text; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            i = j;
        } else {
            unsigned s = 0;
            while (s < sizeof symbols / sizeof *symbols &&
                   strncmp(text + i, symbols[s], strlen(symbols[s])) != 0)
                s++;
            if (s == sizeof symbols / sizeof *symbols)
                parse_error("failed to parse filter: unexpected '%s'", text + i);
            t.op = (enum op)s;
            i += strlen(symbols[s]);
        }
        out = ls_grow(out, sizeof *out * (size_t)(n + 2));
        out[n++] = t;
    }
    out = ls_grow(out, sizeof *out * (size_t)(n + 1));
    out[n] = (struct token){.kind = T_END};
    *count = n;
    return out;
}

/* ---------------------------------------------------------------- the parser */

struct parser {
    struct token *t;
    int pos;
    struct ls_filter *f;
};

static struct node *node(enum node_kind kind, struct node *left, struct node *right)
{
    struct node *n = ls_alloc(sizeof *n);
    n->kind = kind;
    n->left = left;
    n->right = right;
    return n;
}

static int is_op(struct parser *p, enum op op)
{
    return p->t[p->pos].kind == T_OP && p->t[p->pos].op == op;
}

static struct node *expr(struct parser *p);

static struct node *operand(struct parser *p)
{
    struct token *t = &p->t[p->pos];
    if (t->kind != T_END)
        p->pos++;
    if (t->kind == T_OP && t->op == OP_OPEN) {
        struct node *inner = expr(p);
        if (!is_op(p, OP_CLOSE))
            parse_error("failed to parse filter: missing %s", ")");
        p->pos++;
        return node(N_PAREN, inner, 0);
    }
    if (t->kind == T_NAME) {
        int col = ls_column_of(t->text, strlen(t->text));
        if (col < 0)
            parse_error("failed to parse filter: unknown column: %s", t->text);
        p->f->used |= 1ul << col;
        struct node *n = node(N_COLUMN, 0, 0);
        n->column = col;
        return n;
    }
    if (t->kind == T_NUM || t->kind == T_STR) {
        struct node *n = node(t->kind == T_NUM ? N_NUM : N_STR, 0, 0);
        n->text = t->text;
        return n;
    }
    parse_error("failed to parse filter: %s", "an operand is missing");
}

static struct node *compare(struct parser *p)
{
    struct node *left = operand(p);
    struct token *t = &p->t[p->pos];
    if (t->kind == T_OP && (t->op <= OP_NOMATCH || t->op == OP_LT || t->op == OP_GT)) {
        p->pos++;
        struct node *n = node(N_COMPARE, left, operand(p));
        n->op = t->op;
        return n;
    }
    return node(N_TRUTH, left, 0);
}

static struct node *negation(struct parser *p)
{
    if (is_op(p, OP_NOT)) {
        p->pos++;
        return node(N_NOT, negation(p), 0);
    }
    return compare(p);
}

static struct node *conjunction(struct parser *p)
{
    struct node *left = negation(p);
    while (is_op(p, OP_AND)) {
        p->pos++;
        left = node(N_AND, left, negation(p));
    }
    return left;
}

static struct node *expr(struct parser *p)
{
    struct node *left = conjunction(p);
    while (is_op(p, OP_OR)) {
        p->pos++;
        left = node(N_OR, left, conjunction(p));
    }
    return left;
}

struct ls_filter *ls_filter_compile(const char *text)
{
    int count;
    struct ls_filter *f = ls_alloc(sizeof *f);
    struct parser p = {tokenize(text, &count), 0, f};
    f->root = expr(&p);
    if (p.pos != count) {
        struct token *t = &p.t[p.pos];
        parse_error("failed to parse filter: unexpected %s",
                    t->kind == T_OP ? symbols[t->op] : t->text);
    }
    return f;
}

int ls_filter_uses(const struct ls_filter *f, int col)
{
    return (f->used >> col) & 1;
}

/* ---------------------------------------------------------------- evaluation */

/* a value: none (an empty cell), text, or the truth of a parenthesis */
struct value {
    enum { V_NONE, V_TEXT, V_BOOL } kind;
    const char *text;
    int truth;
    int number;   /* a number column or literal */
};

struct row_ctx {
    const struct ls_row *row;
    const struct ls_args *args;
};

static int holds(const struct node *n, struct row_ctx *c);

/* n's value; a column's text is put in cell */
static struct value operand_value(const struct node *n, struct row_ctx *c, struct ls_buf *cell)
{
    struct value v = {V_TEXT, n->text, 0, n->kind == N_NUM};
    if (n->kind == N_PAREN) {
        v.kind = V_BOOL;
        v.truth = holds(n->left, c);
        v.number = 0;
    } else if (n->kind == N_COLUMN) {
        if (!ls_cell(c->row, n->column, c->args, cell))
            v.kind = V_NONE;
        else
            v.text = cell->p ? cell->p : "";
        v.number = ls_columns[n->column].number;
    }
    return v;
}

static int truth(struct value v)
{
    if (v.kind == V_BOOL)
        return v.truth;
    return v.kind == V_TEXT && *v.text && strcmp(v.text, "0") != 0;
}

static const char *as_text(struct value v)
{
    return v.kind == V_BOOL ? (v.truth ? "True" : "False") : v.text;
}

static int as_number(const char *s, double *out)
{
    char *end;
    if (!*s)
        return 0;
    *out = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    return *end == 0;
}

static int regex_search(const char *pattern, const char *text)
{
    static char *last;
    static regex_t re;
    if (!last || strcmp(last, pattern) != 0) {
        if (last) {
            regfree(&re);
            free(last);
        }
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
            nsf_cli_die(LS_PROG, "failed to parse filter: bad regular expression: %s",
                        pattern);
        last = copy(pattern, strlen(pattern));
    }
    return regexec(&re, text, 0, 0, 0) == 0;
}

static int compared(enum op op, struct value a, struct value b)
{
    if (a.kind == V_NONE || b.kind == V_NONE)
        return op == OP_NE && a.kind != b.kind;
    if (op == OP_MATCH || op == OP_NOMATCH)
        return regex_search(as_text(b), as_text(a)) == (op == OP_MATCH);
    int order;
    double x, y;
    if (a.number && b.number && as_number(a.text, &x) && as_number(b.text, &y))
        order = (x > y) - (x < y);
    else if (a.kind == V_BOOL && b.kind == V_BOOL)
        order = a.truth - b.truth;
    else
        order = strcmp(as_text(a), as_text(b));
    switch (op) {
    case OP_EQ: return order == 0;
    case OP_NE: return order != 0;
    case OP_LT: return order < 0;
    case OP_LE: return order <= 0;
    case OP_GT: return order > 0;
    case OP_GE: return order >= 0;
    default: return 0;
    }
}

static int holds(const struct node *n, struct row_ctx *c)
{
    switch (n->kind) {
    case N_OR: return holds(n->left, c) || holds(n->right, c);
    case N_AND: return holds(n->left, c) && holds(n->right, c);
    case N_NOT: return !holds(n->left, c);
    case N_TRUTH: {
        struct ls_buf cell = {0};
        int yes = truth(operand_value(n->left, c, &cell));
        free(cell.p);
        return yes;
    }
    case N_COMPARE: {
        struct ls_buf left = {0}, right = {0};
        struct value a = operand_value(n->left, c, &left);
        int yes = compared(n->op, a, operand_value(n->right, c, &right));
        free(left.p);
        free(right.p);
        return yes;
    }
    default: return 0;
    }
}

int ls_filter_holds(const struct ls_filter *f, const struct ls_row *row,
                    const struct ls_args *a)
{
    struct row_ctx c = {row, a};
    return holds(f->root, &c);
}
