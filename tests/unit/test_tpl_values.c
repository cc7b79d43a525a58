/*
 * test_tpl_values.c — the template engine's values and builtin filters and
 * tests against what Python 3 and Jinja2 3.1 give (the expected strings
 * were computed with python3 and python3-jinja2): str() and repr() of
 * floats and containers, arithmetic and comparisons with Python's signs
 * and errors, attributes, items and slices, string methods, and the
 * filters (round, truncate, title, striptags, urlencode, tojson, ...).
 *
 * The render's runtime (tpl_rt, tpl_alloc, tpl_buf_*, ...) belongs to the
 * engine; this test has a small private one so values are tested alone.
 */
#include "app/tpl.h"
#include "check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a private runtime ---------------------------------------------------------- */

struct tpl_rt {
    void **blocks;
    size_t nblocks, capblocks;
    json_t *kept;
    char err[512];
    bool failed;
    bool autoescape;
};

void *tpl_alloc(tpl_rt *rt, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    if (rt->nblocks == rt->capblocks) {
        rt->capblocks = rt->capblocks ? rt->capblocks * 2 : 64;
        rt->blocks = realloc(rt->blocks, rt->capblocks * sizeof *rt->blocks);
        if (!rt->blocks)
            abort();
    }
    rt->blocks[rt->nblocks++] = p;
    return p;
}

char *tpl_strndup(tpl_rt *rt, const char *s, size_t n)
{
    char *p = tpl_alloc(rt, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

json_t *tpl_keep(tpl_rt *rt, json_t *j)
{
    if (j)
        json_array_append_new(rt->kept, j);
    return j;
}

int tpl_error(tpl_rt *rt, const char *fmt, ...)
{
    if (!rt->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->err, sizeof rt->err, fmt, ap);
        va_end(ap);
        rt->failed = true;
    }
    return -1;
}

bool tpl_autoescape(const tpl_rt *rt) { return rt->autoescape; }

void tpl_buf_init(tpl_buf *b, tpl_rt *rt)
{
    b->rt = rt;
    b->data = NULL;
    b->len = b->cap = 0;
}

void tpl_buf_put(tpl_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = tpl_alloc(b->rt, cap);
        if (b->len)
            memcpy(d, b->data, b->len);
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
}

void tpl_buf_puts(tpl_buf *b, const char *s) { tpl_buf_put(b, s, strlen(s)); }
void tpl_buf_putc(tpl_buf *b, char c) { tpl_buf_put(b, &c, 1); }

void tpl_buf_put_escaped(tpl_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': tpl_buf_puts(b, "&amp;"); break;
        case '<': tpl_buf_puts(b, "&lt;"); break;
        case '>': tpl_buf_puts(b, "&gt;"); break;
        case '"': tpl_buf_puts(b, "&#34;"); break;
        case '\'': tpl_buf_puts(b, "&#39;"); break;
        default: tpl_buf_putc(b, s[i]);
        }
    }
}

const char *tpl_buf_cstr(tpl_buf *b)
{
    if (!b->data)
        return "";
    b->data[b->len] = 0;
    return b->data;
}

static tpl_rt *rt_new(void)
{
    tpl_rt *rt = calloc(1, sizeof *rt);
    rt->kept = json_array();
    return rt;
}

static void rt_free(tpl_rt *rt)
{
    for (size_t i = 0; i < rt->nblocks; i++)
        free(rt->blocks[i]);
    free(rt->blocks);
    json_decref(rt->kept);
    free(rt);
}

/* ---- helpers -------------------------------------------------------------------- */

static tpl_rt *RT;

/* a JSON text as a value (kept alive by the runtime) */
/* A tuple of JSON text's array (the right operand of str %). */
static tv T(const char *text);
static tv J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j) {
        fprintf(stderr, "bad JSON in test: %s\n", text);
        abort();
    }
    tpl_keep(RT, j);
    return tv_from_json(j);
}

static tv T(const char *text)
{
    tv v = J(text);
    return tv_tuple(v.json);
}

static tv S(const char *s) { return tv_strn(s, strlen(s), false); }
static tv SAFE(const char *s) { return tv_strn(s, strlen(s), true); }

/* str(v), or "!message" */
static const char *str_of(tv v)
{
    tpl_buf b;
    tpl_buf_init(&b, RT);
    if (tv_str(RT, &b, v) < 0)
        return "!";
    return tpl_buf_cstr(&b);
}

static const char *repr_of(tv v)
{
    tpl_buf b;
    tpl_buf_init(&b, RT);
    tv_repr(RT, &b, v);
    return tpl_buf_cstr(&b);
}

/* what the last failing call reported, and reset */
static const char *take_error(void)
{
    static char e[520];
    snprintf(e, sizeof e, "!%s", RT->failed ? RT->err : "(no error)");
    RT->failed = false;
    RT->err[0] = 0;
    return e;
}

/* a OP b as repr (strings quoted), or "!message" */
static const char *op(tv a, tv_op o, tv b)
{
    tv r;
    if (tv_binop(RT, o, a, b, &r) < 0)
        return take_error();
    return repr_of(r);
}

/* {{ v }} */
static const char *output(tv v, bool autoescape)
{
    RT->autoescape = autoescape;
    tpl_buf b;
    tpl_buf_init(&b, RT);
    int rc = tv_output(RT, &b, v);
    RT->autoescape = false;
    return rc < 0 ? take_error() : tpl_buf_cstr(&b);
}

/* ---- str and repr --------------------------------------------------------------- */

static void test_str_repr(void)
{
    CHECK_STR(str_of(tv_float(0.1)), "0.1");
    CHECK_STR(str_of(tv_float(1.0)), "1.0");
    CHECK_STR(str_of(tv_float(1e16)), "1e+16");
    CHECK_STR(str_of(tv_float(1e15)), "1000000000000000.0");
    CHECK_STR(str_of(tv_float(1.0 / 3)), "0.3333333333333333");
    CHECK_STR(str_of(tv_float(2.5e-05)), "2.5e-05");
    CHECK_STR(str_of(tv_float(1e-05)), "1e-05");
    CHECK_STR(str_of(tv_float(0.0001)), "0.0001");
    CHECK_STR(str_of(tv_float(-0.0)), "-0.0");
    CHECK_STR(str_of(tv_float(123456789012345678.0)), "1.2345678901234568e+17");
    CHECK_STR(str_of(tv_float(1e22)), "1e+22");
    CHECK_STR(str_of(tv_float(1.5e300 * 1e10)), "inf");
    CHECK_STR(str_of(tv_float(0.1 + 0.2)), "0.30000000000000004");
    CHECK_STR(str_of(tv_float(5e-324)), "5e-324");
    CHECK_STR(str_of(tv_float(1.7976931348623157e308)), "1.7976931348623157e+308");
    CHECK_STR(str_of(tv_float(100.0)), "100.0");
    CHECK_STR(str_of(tv_float(-12.5)), "-12.5");
    CHECK_STR(str_of(tv_none()), "None");
    CHECK_STR(str_of(tv_bool(true)), "True");
    CHECK_STR(str_of(tv_undef("x")), "");
    CHECK_STR(str_of(tv_int(-42)), "-42");
    CHECK_STR(str_of(J("[1, \"a\", null, true, 2.0, [], {}]")), "[1, 'a', None, True, 2.0, [], {}]");
    CHECK_STR(str_of(J("{\"a\": 1, \"b\": {\"c\": \"d\"}}")), "{'a': 1, 'b': {'c': 'd'}}");
    CHECK_STR(str_of(J("[\"it's\", \"say \\\"hi\\\"\", \"both ' \\\"\"]")),
              "[\"it's\", 'say \"hi\"', 'both \\' \"']");
    CHECK_STR(str_of(J("[\"a\\n\\t\\\\\\u0001\\u007f\\u0080\\u00a0\\u00e9\\u2028\"]")),
              "['a\\n\\t\\\\\\x01\\x7f\\x80\\xa0\u00e9\\u2028']");
    CHECK_STR(str_of(J("[\"\\ud83d\\ude00\"]")), "['\xf0\x9f\x98\x80']");
    CHECK_STR(repr_of(S("x")), "'x'");
    /* a Markup in a list prints as its repr */
    CHECK_STR(str_of(J("[{\"__html__\": \"<b>\"}]")), "[Markup('<b>')]");
    tv m = J("{\"__html__\": \"<b>\"}");
    CHECK(m.kind == TV_STR && m.safe);
    CHECK(J("{\"__html__\": \"<b>\", \"x\": 1}").kind == TV_OBJECT);
}

/* repr() of doubles given by their bits (random ones too), from Python */
static const struct { uint64_t bits; const char *repr; } float_cases[] = {
    {0x0000000000000000ULL, "0.0"},
    {0x8000000000000000ULL, "-0.0"},
    {0x3ff0000000000000ULL, "1.0"},
    {0x3fe0000000000000ULL, "0.5"},
    {0x4341c37937e08000ULL, "1e+16"},
    {0x430c6bf526340000ULL, "1000000000000000.0"},
    {0x4341c37937e07fffULL, "9999999999999998.0"},
    {0x3f1a36e2eb1c432dULL, "0.0001"},
    {0x3ee4f8b588e368f1ULL, "1e-05"},
    {0x405edd2f1a9fbe77ULL, "123.456"},
    {0x4340000000000000ULL, "9007199254740992.0"},
    {0x43e0000000000000ULL, "9.223372036854776e+18"},
    {0x3fd5555555555555ULL, "0.3333333333333333"},
    {0x3fe5555555555555ULL, "0.6666666666666666"},
    {0x7e37e43c8800759cULL, "1e+300"},
    {0x01a56e1fc2f8f359ULL, "1e-300"},
    {0x0000000000000001ULL, "5e-324"},
    {0x3fd3333333333334ULL, "0.30000000000000004"},
    {0x4059000000000000ULL, "100.0"},
    {0x3eef75104d551d69ULL, "1.5e-05"},
    {0x41678c29dccccccdULL, "12345678.9"},
    {0x7ff8000000000000ULL, "nan"},
    {0xfff0000000000000ULL, "-inf"},
    {0x3e0ec6ee456a2912ULL, "8.957307212181263e-10"},
    {0x3effa73b9a0bedf6ULL, "3.0186894607970757e-05"},
    {0x3ab3e2cb5b682a38ULL, "6.425485839826166e-26"},
    {0xbb09fac3403cfda4ULL, "-2.6862216617482895e-24"},
    {0x3a84499db332a9adULL, "8.194081262862046e-27"},
    {0xbc9aa95c002798ffULL, "-9.250086831160303e-17"},
    {0xbf5ad037ab37fe25ULL, "-0.0016365569725848097"},
    {0xbd026ec1f7a023a0ULL, "-8.185739733122699e-15"},
    {0xbf820f0fb934de50ULL, "-0.008817789878420218"},
    {0xc15cb39e31ba7bf1ULL, "-7523960.777007089"},
    {0x3cb2d33ee47a5153ULL, "2.612518314634741e-16"},
    {0x4195593271f731dcULL, "89541788.49140114"},
    {0x413a1aec73eb3530ULL, "1710828.4528077357"},
    {0x3a8795402e2e5674ULL, "9.525102111858402e-27"},
    {0x3a21f533e2dd781aULL, "1.1332979587418528e-28"},
    {0xbb7fcb18b4ed9e03ULL, "-4.207814273366475e-22"},
    {0x3b8ebdcb7828082bULL, "8.137177106428498e-22"},
    {0xc14d392dc24c8e6aULL, "-3830363.517961313"},
    {0x449ed51bd29af807ULL, "3.640053895224092e+22"},
    {0x3aff9149edccf9f4ULL, "1.6320032732493245e-24"},
    {0xc22d11bc10a52481ULL, "-62425794642.5713"},
    {0x3af2786203252be5ULL, "9.548893141911562e-25"},
    {0x3a8fdfa689f60f63ULL, "1.287365862667734e-26"},
    {0xc1f5e86478f9d0c5ULL, "-5880825743.613469"},
    {0x4297145b39431488ULL, "6344049316037.133"},
    {0xc4001ec30629b40fULL, "-3.717056592464169e+19"},
    {0x419430f652e93d25ULL, "84688276.72777231"},
    {0xbe9adff41f27ef78ULL, "-4.004660062726353e-07"},
    {0xc4415c210c95ed76ULL, "-6.404665008337136e+20"},
    {0xc4063232ec42ee7fULL, "-5.118069785556942e+19"},
    {0xc14e7ac4d085f062ULL, "-3995017.6290874938"},
    {0x4052c1c28ba58fa3ULL, "75.02749911468577"},
    {0xc3422d80d66b6f41ULL, "-1.0233161914441346e+16"},
    {0x41cc9ee2ff7e19ddULL, "960349694.9851643"},
    {0x3b0714d9fe478421ULL, "2.3865661295098306e-24"},
    {0x3bee5b9b93eaa73dULL, "5.142818591304987e-20"},
    {0x3bc475ea5bd5166dULL, "8.665404243612751e-21"},
    {0xbf4e32d1c2df0304ULL, "-0.0009215854859051247"},
    {0xc29ebb6e7d56805cULL, "-8447590356384.09"},
    {0x4101d41f0b604c53ULL, "146051.88055476788"},
    {0x4580755f145483a6ULL, "6.36706684734635e+26"},
    {0x3e30c6972c68a197ULL, "3.9059073254731856e-09"},
    {0xc1595e8a59bac61aULL, "-6650409.40202477"},
    {0xc447bdbb2f78ffedULL, "-8.758933739717385e+20"},
    {0xc4e583cd21f490feULL, "-8.128080078261927e+23"},
    {0xbd2d29a55ce15a06ULL, "-5.1803325160711116e-14"},
    {0xc29fa681c104b86aULL, "-8700000485678.104"},
    {0x4361e565ecdf8626ULL, "4.029840426088478e+16"},
    {0x424225f517bdb7d6ULL, "155892461435.43622"},
    {0x42cd476541496b7dULL, "64384957321942.98"},
    {0x3d930e063699f648ULL, "4.332555887966071e-12"},
    {0x4571703341881384ULL, "3.3730543176837636e+26"},
    {0x3a1bedee88deebdeULL, "8.812971332921876e-29"},
    {0xbe71d24eef698cbbULL, "-6.63903242186911e-08"},
    {0xbaf86627d8db59e6ULL, "-1.2614010886037086e-24"},
    {0x3c8eecd728b2ec46ULL, "5.364659769450416e-17"},
    {0x3b82029e49373cb7ULL, "4.767267591895884e-22"},
    {0xbef6de97de22c4a1ULL, "-2.181005937335458e-05"},
    {0xc4e27e4e3d82b238ULL, "-6.986601940076121e+23"},
    {0xbbc7feddc5892ddfULL, "-1.0162519810133811e-20"},
    {0x4720771f8ca81811ULL, "4.274642804177215e+34"},
    {0x230d977ee2257159ULL, "7.765387138513795e-140"},
    {0x6e36aab0d1bc52d9ULL, "8.193439767873551e+222"},
    {0x8cdb305fdd2e1609ULL, "-9.721565446084252e-247"},
    {0xb4d66a3a47469a4dULL, "-3.6566096214330605e-54"},
    {0xfc891b4a6a50df4dULL, "-7.829495745681799e+291"},
    {0xaec6f0245bd86d40ULL, "-2.361499160522349e-83"},
    {0x616499c9e25a7605ULL, "1.448139668433268e+161"},
    {0x3b1287fff52ddf5dULL, "3.8321725482165366e-24"},
    {0x153e7c2a26a2c0bdULL, "2.373829056313949e-206"},
    {0x26bb7dbd2d1c9af0ULL, "4.1586747791282524e-122"},
    {0xa8948c893b618676ULL, "-3.337733639824717e-113"},
    {0x0316909e3bbbe9eaULL, "8.832790543982714e-294"},
    {0xd4c28c2e7c26847fULL, "-2.0284108606212458e+100"},
    {0x2eae05cf96d0cc5fULL, "7.7271785554382585e-84"},
    {0x482c9cbc43435cc5ULL, "4.868121678598285e+39"},
    {0x254b0c4e010c4759ULL, "4.877621251706118e-129"},
    {0x88daf4016b4013efULL, "-5.224362650831876e-266"},
    {0x9c1caaf75e8766edULL, "-2.8977267740353203e-173"},
    {0x519088f590fbbd11ULL, "8.030506098092244e+84"},
};

static void test_float_repr(void)
{
    for (size_t i = 0; i < sizeof float_cases / sizeof *float_cases; i++) {
        double d;
        memcpy(&d, &float_cases[i].bits, sizeof d);
        CHECK_STR(str_of(tv_float(d)), float_cases[i].repr);
    }
}

static void test_output(void)
{
    CHECK_STR(output(S("<a href='x'>&"), true), "&lt;a href=&#39;x&#39;&gt;&amp;");
    CHECK_STR(output(S("<a>"), false), "<a>");
    CHECK_STR(output(SAFE("<a>"), true), "<a>");
    CHECK_STR(output(J("[\"<a>\"]"), true), "[&#39;&lt;a&gt;&#39;]");
    CHECK_STR(output(tv_undef("x"), true), "");
    CHECK_STR(output(tv_none(), true), "None");
}

static void test_truth(void)
{
    CHECK(!tv_truthy(tv_int(0)));
    CHECK(!tv_truthy(tv_float(0.0)));
    CHECK(!tv_truthy(S("")));
    CHECK(!tv_truthy(J("[]")));
    CHECK(!tv_truthy(J("{}")));
    CHECK(!tv_truthy(tv_none()));
    CHECK(!tv_truthy(tv_undef("x")));
    CHECK(tv_truthy(J("[0]")));
    CHECK(tv_truthy(S("0")));
    CHECK(tv_truthy(tv_float(-0.5)));
}

/* ---- operators ------------------------------------------------------------------ */

static void test_arith(void)
{
    CHECK_STR(op(tv_int(1), TV_ADD, tv_int(2)), "3");
    CHECK_STR(op(tv_int(1), TV_ADD, tv_float(0.5)), "1.5");
    CHECK_STR(op(tv_bool(true), TV_ADD, tv_int(1)), "2");
    CHECK_STR(op(S("a"), TV_ADD, S("b")), "'ab'");
    CHECK_STR(op(J("[1]"), TV_ADD, J("[2, 3]")), "[1, 2, 3]");
    CHECK_STR(op(S("ab"), TV_MUL, tv_int(3)), "'ababab'");
    CHECK_STR(op(tv_int(2), TV_MUL, S("x")), "'xx'");
    CHECK_STR(op(S("ab"), TV_MUL, tv_int(-1)), "''");
    CHECK_STR(op(J("[1, 2]"), TV_MUL, tv_int(2)), "[1, 2, 1, 2]");
    CHECK_STR(op(tv_int(7), TV_DIV, tv_int(2)), "3.5");
    CHECK_STR(op(tv_int(6), TV_DIV, tv_int(3)), "2.0");
    CHECK_STR(op(tv_int(-7), TV_FLOORDIV, tv_int(2)), "-4");
    CHECK_STR(op(tv_int(7), TV_FLOORDIV, tv_int(-2)), "-4");
    CHECK_STR(op(tv_int(-7), TV_MOD, tv_int(2)), "1");
    CHECK_STR(op(tv_int(7), TV_MOD, tv_int(-2)), "-1");
    CHECK_STR(op(tv_float(-7.5), TV_MOD, tv_int(2)), "0.5");
    CHECK_STR(op(tv_float(7.5), TV_MOD, tv_float(-2)), "-0.5");
    CHECK_STR(op(tv_float(-7.5), TV_FLOORDIV, tv_int(2)), "-4.0");
    CHECK_STR(op(tv_float(0.0), TV_MOD, tv_float(-2)), "-0.0");
    CHECK_STR(op(tv_int(2), TV_POW, tv_int(10)), "1024");
    CHECK_STR(op(tv_int(2), TV_POW, tv_int(-1)), "0.5");
    CHECK_STR(op(tv_float(2), TV_POW, tv_float(0.5)), "1.4142135623730951");
    CHECK_STR(op(tv_int(1), TV_DIV, tv_int(0)), "!division by zero");
    CHECK_STR(op(tv_int(1), TV_FLOORDIV, tv_int(0)), "!integer division or modulo by zero");
    CHECK_STR(op(tv_int(1), TV_MOD, tv_int(0)), "!integer modulo by zero");
    CHECK_STR(op(tv_float(1), TV_DIV, tv_int(0)), "!float division by zero");
    CHECK_STR(op(tv_int(0), TV_POW, tv_int(-1)), "!0.0 cannot be raised to a negative power");
    CHECK_STR(op(tv_int(INT64_MAX), TV_ADD, tv_int(1)), "!integer overflow");
    CHECK_STR(op(tv_int(3), TV_POW, tv_int(40)), "!integer overflow");
    CHECK_STR(op(tv_int(1), TV_ADD, S("a")), "!unsupported operand type(s) for +: 'int' and 'str'");
    CHECK_STR(op(S("a"), TV_ADD, tv_int(1)), "!can only concatenate str (not \"int\") to str");
    CHECK_STR(op(tv_undef("x"), TV_ADD, tv_int(1)), "!'x' is undefined");
    CHECK_STR(op(tv_int(1), TV_SUB, tv_undef("y")), "!'y' is undefined");
    CHECK_STR(op(tv_int(5), TV_NEG, tv_none()), "-5");
    CHECK_STR(op(tv_bool(true), TV_NEG, tv_none()), "-1");
    CHECK_STR(op(S("a"), TV_NEG, tv_none()), "!bad operand type for unary -: 'str'");
    /* Markup + str escapes the str; str + Markup too */
    tv r;
    CHECK(tv_binop(RT, TV_ADD, SAFE("<b>"), S("<"), &r) == 0 && r.safe);
    CHECK_STR(r.str.s, "<b>&lt;");
    CHECK(tv_binop(RT, TV_ADD, S("<"), SAFE("<b>"), &r) == 0 && r.safe);
    CHECK_STR(r.str.s, "&lt;<b>");
    /* ~ */
    CHECK_STR(op(tv_int(1), TV_CONCAT, tv_float(2.5)), "'12.5'");
    CHECK_STR(op(tv_undef("x"), TV_CONCAT, S("a")), "'a'");
    RT->autoescape = true;
    CHECK(tv_binop(RT, TV_CONCAT, SAFE("a"), S("<"), &r) == 0 && r.safe);
    CHECK_STR(r.str.s, "a&lt;");
    CHECK(tv_binop(RT, TV_CONCAT, S("a"), S("<"), &r) == 0 && !r.safe);
    CHECK_STR(r.str.s, "a<");
    RT->autoescape = false;
    CHECK(tv_binop(RT, TV_CONCAT, SAFE("a"), S("<"), &r) == 0 && !r.safe);
    CHECK_STR(r.str.s, "a<");
    /* string % */
    CHECK_STR(op(S("%s-%d"), TV_MOD, T("[\"a\", 3.7]")), "'a-3'");
    CHECK_STR(op(S("%05.1f|%x|%#o|%-4s|%r"), TV_MOD, T("[3.14159, 255, 8, \"ab\", \"q\"]")),
              "\"003.1|ff|0o10|ab  |'q'\"");
    CHECK_STR(op(S("%(a)s and %(b)03d"), TV_MOD, J("{\"a\": \"x\", \"b\": 7}")), "'x and 007'");
    CHECK_STR(op(S("%s"), TV_MOD, tv_int(5)), "'5'");
    CHECK_STR(op(S("%s %s"), TV_MOD, tv_int(5)), "!not enough arguments for format string");
    CHECK_STR(op(S("%s"), TV_MOD, T("[1, 2]")), "!not all arguments converted during string formatting");
    CHECK_STR(op(S("%e|%g|%.3g|%+d|% d|%5.1s|%c"), TV_MOD, T("[1.5, 1e20, 0.0001234, 3, 4, \"abc\", 65]")),
              "'1.500000e+00|1e+20|0.000123|+3| 4|    a|A'");
    CHECK_STR(op(S("%d%%"), TV_MOD, tv_int(50)), "'50%'");
    CHECK_STR(op(S("%d"), TV_MOD, S("x")), "!%d format: a real number is required, not str");
}

static void test_compare(void)
{
    CHECK_STR(op(tv_int(1), TV_EQ, tv_float(1.0)), "True");
    CHECK_STR(op(tv_bool(true), TV_EQ, tv_int(1)), "True");
    CHECK_STR(op(tv_int(1), TV_EQ, S("1")), "False");
    CHECK_STR(op(tv_undef("x"), TV_EQ, tv_none()), "False");
    CHECK_STR(op(tv_undef("x"), TV_EQ, tv_undef("y")), "True");
    CHECK_STR(op(tv_undef("x"), TV_NE, tv_int(0)), "True");
    CHECK_STR(op(J("[1, [2]]"), TV_EQ, J("[1.0, [2]]")), "True");
    CHECK_STR(op(J("{\"a\": 1, \"b\": 2}"), TV_EQ, J("{\"b\": 2, \"a\": 1}")), "True");
    CHECK_STR(op(S("abc"), TV_LT, S("abd")), "True");
    CHECK_STR(op(S("\xc3\xa9"), TV_GT, S("z")), "True");
    CHECK_STR(op(J("[1, 2]"), TV_LT, J("[1, 2, 0]")), "True");
    CHECK_STR(op(tv_int(2), TV_GE, tv_float(2.0)), "True");
    CHECK_STR(op(tv_int(9007199254740993), TV_GT, tv_float(9007199254740992.0)), "True");
    CHECK_STR(op(S("a"), TV_LT, tv_int(1)), "!'<' not supported between instances of 'str' and 'int'");
    CHECK_STR(op(J("[1, 2]"), TV_LT, J("[1, \"a\"]")), "!'<' not supported between instances of 'int' and 'str'");
    CHECK_STR(op(tv_none(), TV_GT, tv_none()), "!'>' not supported between instances of 'NoneType' and 'NoneType'");
    CHECK_STR(op(tv_undef("x"), TV_LT, tv_int(1)), "!'x' is undefined");
    CHECK_STR(op(S("b"), TV_IN, S("abc")), "True");
    CHECK_STR(op(S(""), TV_IN, S("abc")), "True");
    CHECK_STR(op(tv_int(2), TV_IN, J("[1, 2.0]")), "True");
    CHECK_STR(op(S("a"), TV_IN, J("{\"a\": 1}")), "True");
    CHECK_STR(op(S("b"), TV_NOTIN, J("{\"a\": 1}")), "True");
    CHECK_STR(op(S("a"), TV_IN, tv_undef("x")), "False");
    CHECK_STR(op(tv_int(1), TV_IN, S("abc")), "!'in <string>' requires string as left operand, not int");
    CHECK_STR(op(tv_int(1), TV_IN, tv_int(2)), "!argument of type 'int' is not iterable");
}

/* ---- looking into values -------------------------------------------------------- */

static const char *attr(tv v, const char *name)
{
    tv r;
    if (tv_getattr(RT, v, name, &r) < 0)
        return take_error();
    if (r.kind == TV_UNDEF)
        return "<undefined>";
    return repr_of(r);
}

static const char *item(tv v, tv k)
{
    tv r;
    if (tv_getitem(RT, v, k, &r) < 0)
        return take_error();
    if (r.kind == TV_UNDEF)
        return "<undefined>";
    return repr_of(r);
}

static const char *slice(tv v, tv a, tv b, tv c)
{
    tv r;
    if (tv_slice(RT, v, a, b, c, &r) < 0)
        return take_error();
    return repr_of(r);
}

/* v.name(args...) as repr */
static const char *call(tv v, const char *name, size_t n, ...)
{
    tv args[12];
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        args[i] = va_arg(ap, tv);
    va_end(ap);
    tv r;
    bool found;
    if (tv_call_method(RT, v, name, args, n, NULL, 0, &r, &found) < 0)
        return take_error();
    if (!found)
        return "<no method>";
    return repr_of(r);
}

static void test_lookup(void)
{
    tv d = J("{\"a\": 1, \"items\": 2, \"b\": [10, 20, 30]}");
    CHECK_STR(attr(d, "a"), "1");
    CHECK_STR(attr(d, "zz"), "<undefined>");
    CHECK_STR(attr(d, "items"), "<built-in method items>"); /* the method wins */
    CHECK_STR(item(d, S("items")), "2");                     /* the item wins */
    CHECK_STR(item(d, S("keys")), "<built-in method keys>");
    CHECK_STR(attr(tv_undef("u"), "a"), "!'u' is undefined");
    CHECK_STR(item(tv_undef("u"), tv_int(0)), "!'u' is undefined");
    tv l = J("[10, 20, 30]");
    CHECK_STR(item(l, tv_int(-1)), "30");
    CHECK_STR(item(l, tv_int(3)), "<undefined>");
    CHECK_STR(item(l, tv_bool(true)), "20");
    CHECK_STR(item(S("h\xc3\xa9llo"), tv_int(1)), "'\xc3\xa9'");
    CHECK_STR(item(tv_int(5), tv_int(0)), "<undefined>");
    CHECK_STR(slice(l, tv_none(), tv_none(), tv_int(-1)), "[30, 20, 10]");
    CHECK_STR(slice(l, tv_int(1), tv_none(), tv_none()), "[20, 30]");
    CHECK_STR(slice(l, tv_int(-2), tv_int(100), tv_none()), "[20, 30]");
    CHECK_STR(slice(l, tv_int(5), tv_int(1), tv_int(-2)), "[30]");
    CHECK_STR(slice(S("h\xc3\xa9llo"), tv_int(1), tv_int(3), tv_none()), "'\xc3\xa9l'");
    CHECK_STR(slice(S("abcdef"), tv_none(), tv_none(), tv_int(2)), "'ace'");
    CHECK_STR(slice(S("abcdef"), tv_int(-1), tv_int(-4), tv_int(-1)), "'fed'");
    CHECK_STR(slice(l, tv_none(), tv_none(), tv_int(0)), "!slice step cannot be zero");
    int64_t n;
    CHECK(tv_length(RT, S("h\xc3\xa9"), &n) == 0 && n == 2);
    CHECK(tv_length(RT, d, &n) == 0 && n == 3);
    CHECK(tv_length(RT, tv_int(3), &n) < 0);
    CHECK_STR(take_error(), "!object of type 'int' has no len()");
    tv *it;
    size_t cnt;
    /* dicts iterate in the JSON text's order */
    CHECK(tv_iterate(RT, J("{\"z\": 1, \"a\": 2, \"m\": 3}"), &it, &cnt) == 0 && cnt == 3);
    CHECK_STR(it[0].str.s, "z");
    CHECK_STR(it[1].str.s, "a");
    CHECK_STR(it[2].str.s, "m");
    CHECK(tv_iterate(RT, S("a\xc3\xa9"), &it, &cnt) == 0 && cnt == 2);
    CHECK_STR(it[1].str.s, "\xc3\xa9");
    CHECK(tv_iterate(RT, tv_undef("x"), &it, &cnt) == 0 && cnt == 0);
    CHECK(tv_iterate(RT, tv_int(1), &it, &cnt) < 0);
    CHECK_STR(take_error(), "!'int' object is not iterable");
}

static void test_methods(void)
{
    tv d = J("{\"a\": 1, \"b\": [2]}");
    CHECK_STR(call(d, "items", 0), "[('a', 1), ('b', [2])]");
    CHECK_STR(call(d, "keys", 0), "['a', 'b']");
    CHECK_STR(call(d, "values", 0), "[1, [2]]");
    CHECK_STR(call(d, "get", 1, S("a")), "1");
    CHECK_STR(call(d, "get", 1, S("x")), "None");
    CHECK_STR(call(d, "get", 2, S("x"), tv_int(0)), "0");
    CHECK_STR(call(d, "nope", 0), "<no method>");
    CHECK_STR(call(S("  a b  "), "strip", 0), "'a b'");
    CHECK_STR(call(S("xxaxx"), "lstrip", 1, S("x")), "'axx'");
    CHECK_STR(call(S("xxaxx"), "rstrip", 1, S("x")), "'xxa'");
    CHECK_STR(call(S("stra\xc3\x9f" "e"), "upper", 0), "'STRASSE'");
    CHECK_STR(call(S("\xc3\x89T\xc3\x89"), "lower", 0), "'\xc3\xa9t\xc3\xa9'");
    CHECK_STR(call(S("they're bill's 3rd"), "title", 0), "\"They'Re Bill'S 3Rd\"");
    CHECK_STR(call(S("hELLO wORLD"), "capitalize", 0), "'Hello world'");
    CHECK_STR(call(S("a,b,,c"), "split", 1, S(",")), "['a', 'b', '', 'c']");
    CHECK_STR(call(S("a,b,,c"), "split", 2, S(","), tv_int(1)), "['a', 'b,,c']");
    CHECK_STR(call(S("  a  b \t c  "), "split", 0), "['a', 'b', 'c']");
    CHECK_STR(call(S("  a  b \t c  "), "split", 2, tv_none(), tv_int(1)), "['a', 'b \\t c  ']");
    CHECK_STR(call(S(""), "split", 0), "[]");
    CHECK_STR(call(S(""), "split", 1, S(",")), "['']");
    CHECK_STR(call(S("-"), "join", 1, J("[\"a\", \"b\"]")), "'a-b'");
    CHECK_STR(call(S("-"), "join", 1, J("[\"a\", 1]")), "!sequence item 1: expected str instance, int found");
    CHECK_STR(call(S("aaa"), "replace", 2, S("a"), S("b")), "'bbb'");
    CHECK_STR(call(S("aaa"), "replace", 3, S("a"), S("b"), tv_int(2)), "'bba'");
    CHECK_STR(call(S("ab"), "replace", 2, S(""), S("-")), "'-a-b-'");
    CHECK_STR(call(S("abcabc"), "count", 1, S("bc")), "2");
    CHECK_STR(call(S("h\xc3\xa9llo"), "find", 1, S("l")), "2");
    CHECK_STR(call(S("hello"), "find", 1, S("z")), "-1");
    CHECK_STR(call(S("hello"), "startswith", 1, S("he")), "True");
    CHECK_STR(call(S("hello"), "endswith", 1, J("[\"x\", \"lo\"]")), "True");
    CHECK_STR(call(S("123"), "isdigit", 0), "True");
    CHECK_STR(call(S(""), "isdigit", 0), "False");
    CHECK_STR(call(S("ab1"), "isalpha", 0), "False");
    CHECK_STR(call(S("{} and {0} {x!r:>5}"), "format", 1, S("a")), "!cannot switch from automatic field numbering to manual field specification");
    CHECK_STR(call(S("{0} {x!r:>5}"), "format", 1, S("a")), "!KeyError: 'x'");
    CHECK_STR(call(S("{} and {}"), "format", 2, S("a"), tv_int(2)), "'a and 2'");
    CHECK_STR(call(S("{0}{1}{0}"), "format", 2, S("a"), S("b")), "'aba'");
    CHECK_STR(call(S("{:.2f}|{:>6}|{:<4}|{:^7}|{:05d}|{:,}|{:x}|{!r}|{{}}"), "format", 9,
                   tv_float(3.14159), S("ab"), tv_int(1), S("mid"), tv_int(-42),
                   tv_int(1234567), tv_int(255), S("q"), tv_none()),
              "\"3.14|    ab|1   |  mid  |-0042|1,234,567|ff|'q'|{}\"");
    CHECK_STR(call(S("{:.3}|{}|{:.1%}|{:e}|{:+.1f}"), "format", 5, tv_float(1.0), tv_float(0.5),
                   tv_float(0.25), tv_float(12345.678), tv_float(2.25)),
              "'1.0|0.5|25.0%|1.234568e+04|+2.2'");
    CHECK_STR(call(S("x"), "center", 2, tv_int(4), S("*")), "'*x**'");
    CHECK_STR(call(S("ab"), "center", 1, tv_int(5)), "'  ab '");
    CHECK_STR(call(J("[1, 2, 1]"), "count", 1, tv_int(1)), "2");
    CHECK_STR(call(J("[1, 2, 1]"), "index", 1, tv_int(2)), "1");
    CHECK_STR(call(J("[1, 2, 1]"), "index", 1, tv_int(5)), "!5 is not in list");
    /* a bound method calls through its hook */
    tv m;
    CHECK(tv_getattr(RT, S("ab"), "upper", &m) == 0 && m.kind == TV_OPAQUE);
    tv r;
    CHECK(m.op.type->call(RT, m.op.ptr, NULL, 0, NULL, 0, &r) == 0);
    CHECK_STR(repr_of(r), "'AB'");
    CHECK_STR(str_of(m), "<built-in method upper>");
}

/* ---- filters -------------------------------------------------------------------- */

/* Each case: x|filter(*args, **kwargs) rendered as {{ }} (with |list where
 * Jinja returns a generator); "!" where Jinja raises. The expected outputs
 * were rendered by jinja2 from the same JSON. */
/* generated by the filter case generator from python3-jinja2 3.1.2 */
static const struct fcase {
    const char *filter, *in, *args, *kwargs;
    bool autoescape;
    const char *expect;
} fcases[] = {
    {"round", "2.5", "[]", "{}", false, "2.0"},
    {"round", "3.5", "[]", "{}", false, "4.0"},
    {"round", "2.675", "[2]", "{}", false, "2.67"},
    {"round", "-0.4", "[]", "{}", false, "-0.0"},
    {"round", "1250", "[-2]", "{}", false, "1200"},
    {"round", "1350", "[-2]", "{}", false, "1400"},
    {"round", "1234.5678", "[-2]", "{}", false, "1200.0"},
    {"round", "1250.0", "[-2]", "{}", false, "1200.0"},
    {"round", "5", "[]", "{}", false, "5"},
    {"round", "2.1", "[]", "{\"method\": \"ceil\"}", false, "3.0"},
    {"round", "-2.1", "[0, \"floor\"]", "{}", false, "-3.0"},
    {"round", "2.345", "[1, \"ceil\"]", "{}", false, "2.4"},
    {"round", "7", "[1, \"floor\"]", "{}", false, "7.0"},
    {"round", "0.125", "[2]", "{}", false, "0.12"},
    {"round", "1.005", "[2]", "{}", false, "1.0"},
    {"round", "\"3\"", "[]", "{}", false, "!"},
    {"round", "1.5", "[0, \"x\"]", "{}", false, "!"},
    {"truncate", "\"foo bar baz qux\"", "[9]", "{}", false, "foo..."},
    {"truncate", "\"foo bar baz qux\"", "[9, true]", "{}", false, "foo ba..."},
    {"truncate", "\"foo bar baz qux\"", "[11]", "{\"leeway\": 0}", false, "foo bar..."},
    {"truncate", "\"foo bar baz qux\"", "[10]", "{\"end\": \" >>\", \"leeway\": 0}", false, "foo >>"},
    {"truncate", "\"hello world\"", "[8]", "{}", false, "hello world"},
    {"truncate", "\"hello\"", "[2]", "{}", false, "!"},
    {"truncate", "\"x\" ", "[255]", "{}", false, "x"},
    {"truncate", "\"abcdefghijklmnopqrstuvwxyz\"", "[10]", "{\"leeway\": 0}", false, "abcdefg..."},
    {"truncate", "{\"__html__\": \"<b>bold</b> text here and more\"}", "[12]", "{\"leeway\": 0}", true, "<b>bold</..."},
    {"truncate", "\"caf\\u00e9 caf\\u00e9 caf\\u00e9 caf\\u00e9\"", "[10]", "{\"leeway\": 0}", false, "caf\303\251..."},
    {"title", "\"hello world\"", "[]", "{}", false, "Hello World"},
    {"title", "\"they're bill's\"", "[]", "{}", false, "They're Bill's"},
    {"title", "\"foo-bar (baz) [qux] {x} <y>z\"", "[]", "{}", false, "Foo-Bar (Baz) [Qux] {X} <Y>z"},
    {"title", "\"hELLO  wORLD\\tx\"", "[]", "{}", false, "Hello  World\011X"},
    {"title", "\"stra\\u00dfe \\u00e9t\\u00e9\"", "[]", "{}", false, "Stra\303\237e \303\211t\303\251"},
    {"title", "\"3rd place_x\"", "[]", "{}", false, "3rd Place_x"},
    {"striptags", "\"<p>Hello <b>World</b></p>\"", "[]", "{}", false, "Hello World"},
    {"striptags", "\"a <!-- c --> b  \\n c\"", "[]", "{}", false, "a b c"},
    {"striptags", "\"Main &raquo;\\t<em>About</em> &amp; &lt;x&gt; &#39;q&#39; &#x41; &copy &unknown; &amp\"", "[]", "{}", true, "Main \302\273 About &amp; &lt;x&gt; &#39;q&#39; A \302\251 &amp;unknown; &amp;"},
    {"striptags", "\"1 < 2 and 3 > 2\"", "[]", "{}", false, "1 2"},
    {"striptags", "{\"__html__\": \"<i>x</i> &lt;\"}", "[]", "{}", true, "x &lt;"},
    {"striptags", "\"&notit; &nbsp;x &#128; &#0; &hellip;\"", "[]", "{}", false, "\302\254it; \302\240x \342\202\254 \357\277\275 \342\200\246"},
    {"urlencode", "\"a b/c?d=e&f\\u00e9\"", "[]", "{}", false, "a%20b/c%3Fd%3De%26f%C3%A9"},
    {"urlencode", "{\"a\": \"1 2\", \"b/c\": \"x&y\", \"n\": 3}", "[]", "{}", false, "a=1+2&b%2Fc=x%26y&n=3"},
    {"urlencode", "[[\"a\", 1], [\"b\", \"c d\"]]", "[]", "{}", false, "a=1&b=c+d"},
    {"urlencode", "42", "[]", "{}", false, "42"},
    {"urlencode", "\"~._-\"", "[]", "{}", false, "~._-"},
    {"tojson", "{\"b\": [1, 2.5, null, true], \"a\": \"<script>'&'</script>\", \"c\": \"\\u00e9\\ud83d\\ude00\\n\"}", "[]", "{}", true, "{\"a\": \"\\u003cscript\\u003e\\u0027\\u0026\\u0027\\u003c/script\\u003e\", \"b\": [1, 2.5, null, true], \"c\": \"\\u00e9\\ud83d\\ude00\\n\"}"},
    {"tojson", "[1e16, 0.1, {}]", "[]", "{}", false, "[1e+16, 0.1, {}]"},
    {"tojson", "{\"a\": {\"b\": [1, 2]}, \"c\": []}", "[2]", "{}", false, "{\012  \"a\": {\012    \"b\": [\012      1,\012      2\012    ]\012  },\012  \"c\": []\012}"},
    {"tojson", "\"plain\"", "[]", "{}", false, "\"plain\""},
    {"tojson", "{\"__html__\": \"<b>\"}", "[]", "{}", true, "\"\\u003cb\\u003e\""},
    {"int", "\"3.7\"", "[]", "{}", false, "3"},
    {"int", "\"0x1A\"", "[0, 16]", "{}", false, "26"},
    {"int", "\"abc\"", "[]", "{}", false, "0"},
    {"int", "\"abc\"", "[5]", "{}", false, "5"},
    {"int", "\"  42  \"", "[]", "{}", false, "42"},
    {"int", "\"1_000\"", "[]", "{}", false, "1000"},
    {"int", "\"0b101\"", "[]", "{\"base\": 2}", false, "5"},
    {"int", "\"z\"", "[]", "{\"base\": 36}", false, "35"},
    {"int", "3.99", "[]", "{}", false, "3"},
    {"int", "-3.99", "[]", "{}", false, "-3"},
    {"int", "null", "[]", "{}", false, "0"},
    {"int", "true", "[]", "{}", false, "1"},
    {"int", "\"1e3\"", "[]", "{}", false, "1000"},
    {"int", "\"010\"", "[]", "{\"base\": 0}", false, "10"},
    {"int", "\"0x10\"", "[]", "{\"base\": 0}", false, "16"},
    {"int", "[1]", "[]", "{}", false, "0"},
    {"int", "\"-12\"", "[]", "{}", false, "-12"},
    {"float", "\"3.5\"", "[]", "{}", false, "3.5"},
    {"float", "\"x\"", "[]", "{}", false, "0.0"},
    {"float", "\"1e-5\"", "[]", "{}", false, "1e-05"},
    {"float", "\"  -inf \"", "[]", "{}", false, "-inf"},
    {"float", "7", "[]", "{}", false, "7.0"},
    {"float", "\"x\"", "[1.5]", "{}", false, "1.5"},
    {"float", "\"1_0.5\"", "[]", "{}", false, "10.5"},
    {"float", "\"nan\"", "[]", "{}", false, "nan"},
    {"indent", "\"a\\nb\\n\\nc\"", "[]", "{}", false, "a\012    b\012\012    c"},
    {"indent", "\"a\\nb\\n\\nc\"", "[2]", "{\"first\": true}", false, "  a\012  b\012\012  c"},
    {"indent", "\"a\\nb\\n\\nc\\n\"", "[]", "{\"blank\": true}", false, "a\012    b\012    \012    c\012    "},
    {"indent", "\"a\\r\\nb\"", "[\"--\"]", "{}", false, "a\012--b"},
    {"indent", "\"x\"", "[]", "{}", false, "x"},
    {"indent", "\"\"", "[]", "{\"first\": true}", false, "    "},
    {"center", "\"ab\"", "[7]", "{}", false, "   ab  "},
    {"center", "\"abc\"", "[8]", "{}", false, "  abc   "},
    {"center", "5", "[4]", "{}", false, " 5  "},
    {"wordcount", "\"Hello, world! it's a_b 3.5\"", "[]", "{}", false, "7"},
    {"wordcount", "\"caf\\u00e9 \\u00fcber\"", "[]", "{}", false, "2"},
    {"filesizeformat", "1", "[]", "{}", false, "1 Byte"},
    {"filesizeformat", "999", "[]", "{}", false, "999 Bytes"},
    {"filesizeformat", "1000", "[]", "{}", false, "1.0 kB"},
    {"filesizeformat", "123456789", "[]", "{}", false, "123.5 MB"},
    {"filesizeformat", "1048576", "[true]", "{}", false, "1.0 MiB"},
    {"filesizeformat", "\"2048\"", "[]", "{\"binary\": true}", false, "2.0 KiB"},
    {"filesizeformat", "1e30", "[]", "{}", false, "1000000.0 YB"},
    {"filesizeformat", "0", "[]", "{}", false, "0 Bytes"},
    {"format", "\"%s-%05.2f-%d\"", "[\"a\", 3.14159, 42]", "{}", false, "a-03.14-42"},
    {"format", "\"%(a)s=%(b)r\"", "[]", "{\"a\": 1, \"b\": \"x\"}", false, "1='x'"},
    {"format", "{\"__html__\": \"<b>%s</b>\"}", "[\"<i>\"]", "{}", true, "<b>&lt;i&gt;</b>"},
    {"format", "\"%x %o %e %g %%\"", "[255, 8, 12345.678, 0.00001234]", "{}", false, "ff 10 1.234568e+04 1.234e-05 %"},
    {"format", "\"%s\"", "[[1, 2]]", "{}", false, "[1, 2]"},
    {"format", "\"%5s|%-5s|%.2s\"", "[\"ab\", \"cd\", \"efg\"]", "{}", false, "   ab|cd   |ef"},
    {"replace", "\"aaa\"", "[\"a\", \"b\"]", "{}", false, "bbb"},
    {"replace", "\"aaa\"", "[\"a\", \"b\", 2]", "{}", false, "bba"},
    {"replace", "\"<a>\"", "[\"a\", \"<b>\"]", "{}", true, "&lt;&lt;b&gt;&gt;"},
    {"replace", "{\"__html__\": \"<a>x</a>\"}", "[\"x\", \"<y>\"]", "{}", true, "<a>&lt;y&gt;</a>"},
    {"replace", "\"<a>x\"", "[{\"__html__\": \"x\"}, \"y\"]", "{}", true, "&lt;a&gt;y"},
    {"replace", "\"<a>x\"", "[\"x\", {\"__html__\": \"<y>\"}]", "{}", true, "&lt;a&gt;<y>"},
    {"replace", "{\"__html__\": \"<a>x</a>\"}", "[\"x\", \"<y>\"]", "{}", false, "<a><y></a>"},
    {"join", "[\"a\", \"<b>\", 1]", "[\", \"]", "{}", true, "a, &lt;b&gt;, 1"},
    {"join", "[\"a\", {\"__html__\": \"<b>\"}, \"<c>\"]", "[\"<br>\"]", "{}", true, "a&lt;br&gt;<b>&lt;br&gt;&lt;c&gt;"},
    {"join", "[\"a\", \"<c>\"]", "[{\"__html__\": \"<br>\"}]", "{}", true, "a<br>&lt;c&gt;"},
    {"join", "[\"a\", \"<c>\"]", "[\"<br>\"]", "{}", false, "a<br><c>"},
    {"join", "[{\"n\": \"x\"}, {\"n\": \"y\"}]", "[\"-\"]", "{\"attribute\": \"n\"}", false, "x-y"},
    {"join", "[1, 2, 3]", "[]", "{}", false, "123"},
    {"trim", "\"  a b  \"", "[]", "{}", false, "a b"},
    {"trim", "\"xxaxx\"", "[\"x\"]", "{}", false, "a"},
    {"trim", "\"\\u00a0 a\\t\\n\"", "[]", "{}", false, "a"},
    {"capitalize", "\"hELLO World\"", "[]", "{}", false, "Hello world"},
    {"upper", "\"stra\\u00dfe\"", "[]", "{}", false, "STRASSE"},
    {"lower", "\"\\u00c9T\\u00c9 ABC\"", "[]", "{}", false, "\303\251t\303\251 abc"},
    {"upper", "{\"__html__\": \"<b>x</b>\"}", "[]", "{}", true, "<B>X</B>"},
    {"lower", "\"<B>\"", "[]", "{}", true, "&lt;b&gt;"},
    {"sort", "[3, 1, 2]", "[]", "{}", false, "[1, 2, 3]"},
    {"sort", "[\"b\", \"A\", \"c\", \"a\"]", "[]", "{}", false, "['A', 'a', 'b', 'c']"},
    {"sort", "[\"b\", \"A\", \"c\", \"a\"]", "[]", "{\"case_sensitive\": true}", false, "['A', 'a', 'b', 'c']"},
    {"sort", "[\"b\", \"A\", \"c\"]", "[true]", "{}", false, "['c', 'b', 'A']"},
    {"sort", "[{\"n\": 2, \"m\": \"b\"}, {\"n\": 1, \"m\": \"z\"}, {\"n\": 2, \"m\": \"a\"}]", "[]", "{\"attribute\": \"n,m\"}", false, "[{'n': 1, 'm': 'z'}, {'n': 2, 'm': 'a'}, {'n': 2, 'm': 'b'}]"},
    {"sort", "[{\"n\": 2, \"i\": 1}, {\"n\": 1, \"i\": 2}, {\"n\": 2, \"i\": 3}]", "[]", "{\"attribute\": \"n\", \"reverse\": true}", false, "[{'n': 2, 'i': 1}, {'n': 2, 'i': 3}, {'n': 1, 'i': 2}]"},
    {"sort", "[1, \"a\"]", "[]", "{}", false, "!"},
    {"sort", "[null, null]", "[]", "{}", false, "[None, None]"},
    {"sort", "[[2, 1], [1, 5], [1, 2]]", "[]", "{}", false, "[[1, 2], [1, 5], [2, 1]]"},
    {"sort", "{\"b\": 1, \"a\": 2}", "[]", "{}", false, "['a', 'b']"},
    {"sort", "\"cab\"", "[]", "{}", false, "['a', 'b', 'c']"},
    {"unique", "[\"a\", \"A\", \"b\", \"a\"]", "[]", "{}", false, "['a', 'b']"},
    {"unique", "[\"a\", \"A\", \"b\"]", "[]", "{\"case_sensitive\": true}", false, "['a', 'A', 'b']"},
    {"unique", "[1, 1.0, true, 2]", "[]", "{}", false, "[1, 2]"},
    {"unique", "[{\"x\": 1}, {\"x\": 2}, {\"x\": 1}]", "[]", "{\"attribute\": \"x\"}", false, "[{'x': 1}, {'x': 2}]"},
    {"min", "[3, 1, 2]", "[]", "{}", false, "1"},
    {"max", "[\"a\", \"B\", \"c\"]", "[]", "{}", false, "c"},
    {"max", "[\"a\", \"B\", \"c\"]", "[]", "{\"case_sensitive\": true}", false, "c"},
    {"max", "[{\"v\": 1}, {\"v\": 3}, {\"v\": 3, \"w\": 1}]", "[]", "{\"attribute\": \"v\"}", false, "{'v': 3}"},
    {"min", "[]", "[]", "{}", false, ""},
    {"sum", "[1, 2.5, 3]", "[]", "{}", false, "6.5"},
    {"sum", "[{\"p\": 2}, {\"p\": 3}]", "[]", "{\"attribute\": \"p\", \"start\": 10}", false, "15"},
    {"sum", "[[1], [2]]", "[]", "{\"start\": []}", false, "[1, 2]"},
    {"first", "[4, 5]", "[]", "{}", false, "4"},
    {"last", "[4, 5]", "[]", "{}", false, "5"},
    {"first", "\"abc\"", "[]", "{}", false, "a"},
    {"last", "{\"a\": 1, \"b\": 2}", "[]", "{}", false, "b"},
    {"first", "[]", "[]", "{}", false, ""},
    {"length", "\"h\\u00e9\"", "[]", "{}", false, "2"},
    {"count", "{\"a\": 1}", "[]", "{}", false, "1"},
    {"length", "5", "[]", "{}", false, "!"},
    {"list", "\"ab\"", "[]", "{}", false, "['a', 'b']"},
    {"list", "{\"x\": 1, \"y\": 2}", "[]", "{}", false, "['x', 'y']"},
    {"reverse", "\"h\\u00e9llo\"", "[]", "{}", false, "oll\303\251h"},
    {"reverse", "[1, 2, 3]", "[]", "{}", false, "[3, 2, 1]"},
    {"batch", "[1, 2, 3, 4, 5]", "[2]", "{}", false, "[[1, 2], [3, 4], [5]]"},
    {"batch", "[1, 2, 3, 4, 5]", "[3, 0]", "{}", false, "[[1, 2, 3], [4, 5, 0]]"},
    {"slice", "[1, 2, 3, 4, 5, 6, 7]", "[3]", "{}", false, "[[1, 2, 3], [4, 5], [6, 7]]"},
    {"slice", "[1, 2, 3, 4, 5, 6, 7]", "[3, \"x\"]", "{}", false, "[[1, 2, 3], [4, 5, 'x'], [6, 7, 'x']]"},
    {"slice", "[1, 2]", "[4]", "{}", false, "[[1], [2], [], []]"},
    {"map", "[\"a\", \"b\"]", "[\"upper\"]", "{}", false, "['A', 'B']"},
    {"map", "[{\"n\": \"x\"}, {\"m\": 1}]", "[]", "{\"attribute\": \"n\"}", false, "['x', Undefined]"},
    {"map", "[{\"n\": \"x\"}, {\"m\": 1}]", "[]", "{\"attribute\": \"n\", \"default\": \"?\"}", false, "['x', '?']"},
    {"map", "[1.26, 2.5]", "[\"round\", 1]", "{}", false, "[1.3, 2.5]"},
    {"map", "[[1, 2], [3, 4]]", "[]", "{\"attribute\": \"1\"}", false, "[2, 4]"},
    {"map", "[\"a\"]", "[\"truncate\"]", "{\"length\": 5}", false, "['a']"},
    {"select", "[0, 1, 2, 3, null, \"\"]", "[]", "{}", false, "[1, 2, 3]"},
    {"select", "[1, 2, 3, 4]", "[\"odd\"]", "{}", false, "[1, 3]"},
    {"reject", "[1, 2, 3, 4]", "[\"divisibleby\", 2]", "{}", false, "[1, 3]"},
    {"select", "[1, 5, 10]", "[\">\", 3]", "{}", false, "[5, 10]"},
    {"select", "[\"a\", \"B\"]", "[\"lower\"]", "{}", false, "['a']"},
    {"select", "[1, \"a\", null]", "[\"string\"]", "{}", false, "['a']"},
    {"selectattr", "[{\"a\": 1}, {\"a\": 0}, {\"b\": 1}]", "[\"a\"]", "{}", false, "[{'a': 1}]"},
    {"rejectattr", "[{\"a\": 1}, {\"a\": 0}, {\"b\": 1}]", "[\"a\"]", "{}", false, "[{'a': 0}, {'b': 1}]"},
    {"selectattr", "[{\"a\": 1}, {\"a\": 2}, {\"b\": 1}]", "[\"a\", \"equalto\", 2]", "{}", false, "[{'a': 2}]"},
    {"selectattr", "[{\"a\": 1}, {\"b\": 1}]", "[\"a\", \"defined\"]", "{}", false, "[{'a': 1}]"},
    {"select", "[1, 2]", "[\"in\", [2, 3]]", "{}", false, "[2]"},
    {"default", "null", "[\"x\"]", "{}", false, "None"},
    {"default", "\"\"", "[\"x\", true]", "{}", false, "x"},
    {"d", "0", "[]", "{\"default_value\": 5, \"boolean\": true}", false, "5"},
    {"escape", "\"<a href=\\\"x\\\">'&\"", "[]", "{}", false, "&lt;a href=&#34;x&#34;&gt;&#39;&amp;"},
    {"e", "{\"__html__\": \"<b>\"}", "[]", "{}", true, "<b>"},
    {"forceescape", "{\"__html__\": \"<b>\"}", "[]", "{}", true, "&lt;b&gt;"},
    {"safe", "\"<b>\"", "[]", "{}", true, "<b>"},
    {"escape", "5", "[]", "{}", true, "5"},
    {"string", "[1, \"a\"]", "[]", "{}", true, "[1, &#39;a&#39;]"},
    {"pprint", "{\"b\": 1, \"a\": [1, \"x\"]}", "[]", "{}", false, "{'a': [1, 'x'], 'b': 1}"},
    {"pprint", "\"s\"", "[]", "{}", false, "'s'"},
    {"xmlattr", "{\"class\": \"a<b\", \"id\": 5, \"skip\": null, \"data-x\": \"\\\"q\\\"\"}", "[]", "{}", true, " class=\"a&lt;b\" id=\"5\" data-x=\"&#34;q&#34;\""},
    {"xmlattr", "{\"a\": 1, \"b\": 2}", "[false]", "{}", false, "a=\"1\" b=\"2\""},
    {"xmlattr", "{\"a b\": 1}", "[]", "{}", false, "!"},
    {"xmlattr", "{}", "[]", "{}", true, ""},
    {"abs", "-5", "[]", "{}", false, "5"},
    {"abs", "-2.5", "[]", "{}", false, "2.5"},
    {"abs", "true", "[]", "{}", false, "1"},
    {"abs", "\"x\"", "[]", "{}", false, "!"},
    {"attr", "{\"a\": 1}", "[\"a\"]", "{}", false, ""},
    {"groupby", "[{\"c\": \"Paris\", \"n\": 1}, {\"c\": \"berlin\", \"n\": 2}, {\"c\": \"paris\", \"n\": 3}]", "[\"c\"]", "{}", false, "[('berlin', [{'c': 'berlin', 'n': 2}]), ('Paris', [{'c': 'Paris', 'n': 1}, {'c': 'paris', 'n': 3}])]"},
    {"groupby", "[{\"c\": \"Paris\", \"n\": 1}, {\"c\": \"berlin\", \"n\": 2}, {\"c\": \"paris\", \"n\": 3}]", "[\"c\"]", "{\"case_sensitive\": true}", false, "[('Paris', [{'c': 'Paris', 'n': 1}]), ('berlin', [{'c': 'berlin', 'n': 2}]), ('paris', [{'c': 'paris', 'n': 3}])]"},
    {"groupby", "[{\"c\": \"a\", \"n\": 1}, {\"n\": 2}]", "[\"c\"]", "{\"default\": \"z\"}", false, "[('a', [{'c': 'a', 'n': 1}]), ('z', [{'n': 2}])]"},
    {"groupby", "[[1, \"x\"], [0, \"y\"], [1, \"z\"]]", "[0]", "{}", false, "[(0, [[0, 'y']]), (1, [[1, 'x'], [1, 'z']])]"},
    {"dictsort", "{\"b\": 1, \"a\": 2, \"C\": 0}", "[]", "{}", false, "[('a', 2), ('b', 1), ('C', 0)]"},
    {"dictsort", "{\"b\": 1, \"a\": 2, \"C\": 0}", "[true]", "{}", false, "[('C', 0), ('a', 2), ('b', 1)]"},
    {"dictsort", "{\"b\": 1, \"a\": 2, \"C\": 0}", "[]", "{\"by\": \"value\", \"reverse\": true}", false, "[('a', 2), ('b', 1), ('C', 0)]"},
    {"dictsort", "{\"a\": 1}", "[]", "{\"by\": \"x\"}", false, "!"},
    {"items", "{\"b\": 1, \"a\": [2]}", "[]", "{}", false, "[('b', 1), ('a', [2])]"},
    {"items", "[1]", "[]", "{}", false, "!"},
    {"wordwrap", "\"The quick brown fox jumps over the lazy dog\"", "[10]", "{}", false, "The quick\012brown fox\012jumps over\012the lazy\012dog"},
    {"wordwrap", "\"a very-long-hyphenated-word here and supercalifragilisticexpialidocious\"", "[8]", "{}", false, "a very-\012long-hyp\012henated-\012word\012here and\012supercal\012ifragili\012sticexpi\012alidocio\012us"},
    {"wordwrap", "\"a very-long-hyphenated-word here\"", "[8]", "{\"break_on_hyphens\": false, \"wrapstring\": \"|\"}", false, "a very-l|ong-hyph|enated-w|ord here"},
    {"wordwrap", "\"line one\\n\\nline two is longer\\n  indented\"", "[10, false]", "{}", false, "line one\012\012line two\012is longer\012  indented"},
    {"pprint", "[{\"age\": 30, \"city\": \"Paris\", \"name\": \"Ann\"}, {\"age\": 25, \"city\": \"berlin\", \"name\": \"bob\"}, {\"age\": 35, \"city\": \"paris\", \"name\": \"Cy\"}]", "[]", "{}", false, "[{'age': 30, 'city': 'Paris', 'name': 'Ann'},\012 {'age': 25, 'city': 'berlin', 'name': 'bob'},\012 {'age': 35, 'city': 'paris', 'name': 'Cy'}]"},
    {"pprint", "{\"key\": \"a long value a long value a long value a long value a long value a long value\", \"k2\": [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]}", "[]", "{}", false, "{'k2': [1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3,\012        1,\012        2,\012        3],\012 'key': 'a long value a long value a long value a long value a long value a '\012        'long value'}"},
    {"pprint", "\"line one\\nline two line two line two line two line two line two line two line two line two line two line two\"", "[]", "{}", false, "('line one\\n'\012 'line two line two line two line two line two line two line two line two line '\012 'two line two line two')"},
    {"center", "\"x\"", "[]", "{}", false, "                                       x                                        "},
    {"wordcount", "5", "[]", "{}", false, "1"},
};

/* x|name(*args, **kwargs) as {{ }} writes it, or "!" */
static const char *run_filter(const char *name, tv in, const char *args, const char *kwargs,
                              bool autoescape)
{
    tpl_filter_fn f = tpl_builtin_filter(name);
    if (!f)
        return "<no filter>";
    tv a = J(args), k = J(kwargs);
    size_t na = json_array_size(a.json), nk = json_object_size(k.json);
    tv av[8];
    tpl_kwarg kv[8];
    for (size_t i = 0; i < na && i < 8; i++)
        av[i] = tv_from_json(json_array_get(a.json, i));
    const char *key;
    json_t *e;
    size_t i = 0;
    json_object_foreach(k.json, key, e) {
        if (i < 8) {
            kv[i].name = key;
            kv[i].value = tv_from_json(e);
        }
        i++;
    }
    RT->autoescape = autoescape;
    tv r;
    int rc = f(RT, in, av, na, kv, nk, &r);
    const char *res = rc < 0 ? "!" : output(r, autoescape);
    RT->autoescape = false;
    RT->failed = false;
    return res;
}

static void test_filter_cases(void)
{
    for (size_t i = 0; i < sizeof fcases / sizeof *fcases; i++) {
        const struct fcase *c = &fcases[i];
        const char *got = run_filter(c->filter, J(c->in), c->args, c->kwargs, c->autoescape);
        if (strcmp(got, c->expect) != 0) {
            fprintf(stderr, "%s:%d: %s|%s(*%s, **%s)%s == \"%s\", expected \"%s\"\n", __FILE__,
                    __LINE__, c->in, c->filter, c->args, c->kwargs,
                    c->autoescape ? " (autoescape)" : "", got, c->expect);
            check_failures++;
        }
    }
}

/* ---- tests ---------------------------------------------------------------------- */

/* generated from python3-jinja2 3.1.2: x is test(*args) for each x */
static const char *const tvals[] = {"null", "true", "false", "0", "1", "2", "3.0", "2.5", "-3", "\"\"", "\"abc\"", "\"ABC\"", "\"aB\"", "\"a1\"", "\"1\"", "[]", "[1, 2]", "{}", "{\"a\": 1}", "{\"__html__\": \"<b>\"}"};
static const struct tcase {
    const char *test, *args, *expect; /* expect: one of T F ! per value */
} tcases[] = {
    {"defined", "[]", "TTTTTTTTTTTTTTTTTTTT"},
    {"none", "[]", "TFFFFFFFFFFFFFFFFFFF"},
    {"boolean", "[]", "FTTFFFFFFFFFFFFFFFFF"},
    {"false", "[]", "FFTFFFFFFFFFFFFFFFFF"},
    {"true", "[]", "FTFFFFFFFFFFFFFFFFFF"},
    {"number", "[]", "FTTTTTTTTFFFFFFFFFFF"},
    {"integer", "[]", "FFFTTTFFTFFFFFFFFFFF"},
    {"float", "[]", "FFFFFFTTFFFFFFFFFFFF"},
    {"string", "[]", "FFFFFFFFFTTTTTTFFFFT"},
    {"mapping", "[]", "FFFFFFFFFFFFFFFFFTTF"},
    {"sequence", "[]", "FFFFFFFFFTTTTTTTTTTT"},
    {"iterable", "[]", "FFFFFFFFFTTTTTTTTTTT"},
    {"callable", "[]", "FFFFFFFFFFFFFFFFFFFF"},
    {"odd", "[]", "!TFFTFTFT!!!!!!!!!!!"},
    {"even", "[]", "!FTTFTFFF!!!!!!!!!!!"},
    {"divisibleby", "[3]", "!FTTFFTFT!!!!!!!!!!!"},
    {"eq", "[1]", "FTFFTFFFFFFFFFFFFFFF"},
    {"ne", "[1]", "TFTTFTTTTTTTTTTTTTTT"},
    {"lt", "[2]", "!TTTTFFFT!!!!!!!!!!!"},
    {"le", "[2]", "!TTTTTFFT!!!!!!!!!!!"},
    {"gt", "[1]", "!FFFFTTTF!!!!!!!!!!!"},
    {"ge", "[1]", "!TFFTTTTF!!!!!!!!!!!"},
    {"in", "[[1, 2, \"abc\"]]", "FTFFTTFFFFTFFFFFFFFF"},
    {"in", "[\"xabcx\"]", "!!!!!!!!!TTFFFF!!!!F"},
    {"lower", "[]", "FFFFFFFFFFTFFTFFFFTT"},
    {"upper", "[]", "FFFFFFFFFFFTFFFFFFFF"},
    {"escaped", "[]", "FFFFFFFFFFFFFFFFFFFT"},
    {"sameas", "[null]", "TFFFFFFFFFFFFFFFFFFF"},
    {"sameas", "[true]", "FTFFFFFFFFFFFFFFFFFF"},
    {"filter", "[]", "FFFFFFFFFFFFFFF!!!!F"},
    {"test", "[]", "FFFFFFFFFFFFFFF!!!!F"},
};

static void test_test_cases(void)
{
    size_t nv = sizeof tvals / sizeof *tvals;
    for (size_t i = 0; i < sizeof tcases / sizeof *tcases; i++) {
        const struct tcase *c = &tcases[i];
        tpl_test_fn t = tpl_builtin_test(c->test);
        CHECK(t != NULL);
        if (!t)
            continue;
        tv a = J(c->args);
        size_t na = json_array_size(a.json);
        tv av[4];
        for (size_t k = 0; k < na && k < 4; k++)
            av[k] = tv_from_json(json_array_get(a.json, k));
        for (size_t v = 0; v < nv; v++) {
            bool r = false;
            char got = t(RT, J(tvals[v]), av, na, &r) < 0 ? '!' : r ? 'T' : 'F';
            RT->failed = false;
            if (got != c->expect[v]) {
                fprintf(stderr, "%s:%d: %s is %s(*%s) gave %c, expected %c\n", __FILE__, __LINE__,
                        tvals[v], c->test, c->args, got, c->expect[v]);
                check_failures++;
            }
        }
    }
    /* undefined */
    bool r;
    CHECK(tpl_builtin_test("defined")(RT, tv_undef("x"), NULL, 0, &r) == 0 && !r);
    CHECK(tpl_builtin_test("undefined")(RT, tv_undef("x"), NULL, 0, &r) == 0 && r);
    CHECK(tpl_builtin_test("divisibleby")(RT, tv_int(3), NULL, 0, &r) < 0);
    RT->failed = false;
    /* every name in both tables is found (the tables are sorted) */
    static const char *const filters[] = {
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
        "escape", "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent",
        "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "pprint",
        "random", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
        "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim",
        "truncate", "unique", "upper", "urlencode", "wordcount", "wordwrap", "xmlattr"};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (!tpl_builtin_filter(filters[i])) {
            fprintf(stderr, "no filter %s\n", filters[i]);
            check_failures++;
        }
    static const char *const tests[] = {
        "!=", "<", "<=", "==", ">", ">=", "boolean", "callable", "defined", "divisibleby", "eq",
        "equalto", "escaped", "even", "false", "filter", "float", "ge", "greaterthan", "gt", "in",
        "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping", "ne", "none", "number",
        "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper"};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        if (!tpl_builtin_test(tests[i])) {
            fprintf(stderr, "no test %s\n", tests[i]);
            check_failures++;
        }
    CHECK(tpl_builtin_filter("nope") == NULL);
    CHECK(tpl_builtin_test("nope") == NULL);
}

int main(void)
{
    RT = rt_new();
    test_str_repr();
    test_float_repr();
    test_output();
    test_truth();
    test_arith();
    test_compare();
    test_lookup();
    test_methods();
    test_filter_cases();
    test_test_cases();
    rt_free(RT);
    return CHECK_DONE();
}
