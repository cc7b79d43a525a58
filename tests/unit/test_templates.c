/*
 * test_templates.c — the template engine (src/app/tpl_*.c) through
 * tpl_env_add and tpl_render: each statement and expression form,
 * whitespace control, inheritance chains with super() and self, macros,
 * call blocks and imports, loop variables, Jinja's scoping, autoescaping,
 * C globals and filters and the host's names, syntax and render errors
 * with their line numbers, and the bounds on recursion, output, steps and
 * nesting. tpl_env_load_dir on a folder made here. The expected outputs
 * are Jinja2 3.1's.
 */
#include "app/tpl.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tpl_env *env;
static char out_buf[1 << 16];
static char err_buf[1024];

/* Add a template; 0 or -1 with err_buf set. */
static int add(const char *name, const char *src)
{
    err_buf[0] = 0;
    return tpl_env_add(env, name, src, strlen(src), err_buf, sizeof err_buf);
}

static json_t *host_lookup(void *data, const char *name)
{
    json_t *names = data;
    return json_object_get(names, name);
}

/* Render name with a JSON context: the output, or NULL with err_buf set. */
static const char *render_host(const char *name, const char *ctx_json, const tpl_host *host)
{
    json_t *ctx = NULL;
    if (ctx_json) {
        json_error_t e;
        ctx = json_loads(ctx_json, 0, &e);
        if (!ctx) {
            fprintf(stderr, "bad test JSON: %s\n", e.text);
            abort();
        }
    }
    cf_arena arena;
    cf_arena_init(&arena, NULL, 0);
    const char *out = NULL;
    size_t len = 0;
    err_buf[0] = 0;
    int rc = tpl_render(env, name, ctx, host, &arena, &out, &len, err_buf, sizeof err_buf);
    const char *result = NULL;
    if (rc == 0) {
        if (len >= sizeof out_buf)
            len = sizeof out_buf - 1;
        memcpy(out_buf, out, len);
        out_buf[len] = 0;
        result = out_buf;
    }
    cf_arena_reset(&arena);
    json_decref(ctx);
    return result;
}

static const char *render(const char *name, const char *ctx_json) { return render_host(name, ctx_json, NULL); }

/* Compile src as "t.txt" (or name) and render it. */
static const char *run_as(const char *name, const char *src, const char *ctx_json)
{
    if (add(name, src) != 0)
        return NULL;
    return render(name, ctx_json);
}

static const char *run(const char *src, const char *ctx_json) { return run_as("t.txt", src, ctx_json); }

#define CHECK_RUN(src, ctx, want) CHECK_STR(run((src), (ctx)), (want))
#define CHECK_HTML(src, ctx, want) CHECK_STR(run_as("t.html", (src), (ctx)), (want))
/* A render error whose message contains `part`. */
#define CHECK_RENDER_ERROR(src, ctx, part)                                                   \
    do {                                                                                      \
        CHECK_INT(add("t.txt", (src)), 0);                                                    \
        CHECK(render("t.txt", (ctx)) == NULL);                                                \
        if (!strstr(err_buf, (part))) {                                                       \
            fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, err_buf, \
                    (part));                                                                  \
            check_failures++;                                                                 \
        }                                                                                     \
    } while (0)
#define CHECK_SYNTAX_ERROR(src, part)                                                         \
    do {                                                                                      \
        CHECK_INT(add("bad.txt", (src)), -1);                                                 \
        if (!strstr(err_buf, (part))) {                                                       \
            fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, err_buf, \
                    (part));                                                                  \
            check_failures++;                                                                 \
        }                                                                                     \
    } while (0)

static void test_expressions(void)
{
    CHECK_RUN("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }}", NULL,
              "7 9 64 3 -4 1");
    CHECK_RUN("{{ 1 / 2 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ -x }}", "{\"x\": 3}", "0.5 a1None abab -3");
    CHECK_RUN("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 2 in [1, 2] }} {{ 'b' not in 'abc' }}", NULL,
              "True False True False");
    CHECK_RUN("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 1 }} {{ not 0 }}", NULL, "x y  True");
    CHECK_RUN("{{ 'a' if x else 'b' }}|{{ 'a' if not x }}|", "{\"x\": 1}", "a||");
    CHECK_RUN("{{ d.a }} {{ d['b'][1] }} {{ d.b.0 }} {{ xs[1:] }} {{ xs[::-1] }} {{ 'hello'[1:3] }}",
              "{\"d\": {\"a\": 1, \"b\": [5, 6]}, \"xs\": [1, 2, 3]}", "1 6 5 [2, 3] [3, 2, 1] el");
    CHECK_RUN("{{ [1, 'a', none, true] }} {{ {'k': 1} }}", NULL, "[1, 'a', None, True] {'k': 1}");
    CHECK_RUN("{{ 'x\\ty\\n\\'q\\'' }}|{{ \"\\u00e9\" }}|{{ 'a' 'b' }}", NULL, "x\ty\n'q'|\xc3\xa9|ab");
    CHECK_RUN("{{ 1_000 }} {{ 0x1f }} {{ 1.5e3 }} {{ 2.50 }}", NULL, "1000 31 1500.0 2.5");
    CHECK_RUN("{{ 'Hi'|upper }} {{ xs|join(', ') }} {{ xs|length }} {{ -3|abs }} {{ nope|default('d') }}",
              "{\"xs\": [1, 2]}", "HI 1, 2 2 3 d");
    CHECK_RUN("{{ x is defined }} {{ y is defined }} {{ 6 is divisibleby(3) }} {{ 6 is divisibleby 4 }} "
              "{{ none is not none }} {{ 3 is odd }}",
              "{\"x\": 1}", "True False True False False True");
    CHECK_RUN("{{ '%s-%d'|format('a', 3) }} {{ 'a,b'.split(',') }} {{ d.items()|list|length }} {{ d.get('z', 9) }}",
              "{\"d\": {\"a\": 1}}", "a-3 ['a', 'b'] 1 9");
    CHECK_RUN("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}", NULL,
              "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
    CHECK_RUN("{{ dict(a=1, b='x') }}", NULL, "{'a': 1, 'b': 'x'}");
    CHECK_RUN("{{ missing }}|{% for x in missing %}no{% endfor %}|{{ missing|length if false else 'ok' }}",
              NULL, "||ok");
}

static void test_statements(void)
{
    CHECK_RUN("{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}", "{\"x\": 2}", "two");
    CHECK_RUN("{% if x %}yes{% else %}no{% endif %}", "{\"x\": []}", "no");
    CHECK_RUN("{% for x in xs %}{{ x }},{% else %}empty{% endfor %}", "{\"xs\": [1, 2]}", "1,2,");
    CHECK_RUN("{% for x in xs %}{{ x }},{% else %}empty{% endfor %}", "{\"xs\": []}", "empty");
    CHECK_RUN("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "{\"d\": {\"a\": 1, \"b\": 2}}",
              "a=1;b=2;");
    CHECK_RUN("{% for x in range(10) if x is odd %}{{ loop.index }}:{{ x }}/{{ loop.length }} {% endfor %}",
              NULL, "1:1/5 2:3/5 3:5/5 4:7/5 5:9/5 ");
    CHECK_RUN("{% for x in 'abc' %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
              "{{ loop.first|int }}{{ loop.last|int }}{{ loop.cycle('o', 'e') }}"
              "{{ loop.previtem|default('-') }}{{ loop.nextitem|default('-') }} {% endfor %}",
              NULL, "03210o-b 12100eac 21001ob- ");
    CHECK_RUN("{% for i in [1, 1, 2] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}", NULL, "12");
    CHECK_RUN("{% for n in tree recursive %}[{{ n.name }}{{ loop.depth }}{{ loop(n.kids) if n.kids }}]{% endfor %}",
              "{\"tree\": [{\"name\": \"a\", \"kids\": [{\"name\": \"b\"}]}, {\"name\": \"c\"}]}", "[a1[b2]][c1]");
    CHECK_RUN("{% for row in rows %}{% for c in row %}{{ loop.index }}{% endfor %}|{% endfor %}",
              "{\"rows\": [[1, 2], [3]]}", "12|1|");
    /* scoping: a loop's set stays in the loop; an if's set does not */
    CHECK_RUN("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", NULL, "21");
    CHECK_RUN("{% if true %}{% set x = 5 %}{% endif %}{{ x }}", NULL, "5");
    CHECK_RUN("{% for i in [1, 2] %}{% if i == 1 %}{% set y = 5 %}{% endif %}{{ y }}.{% endfor %}", NULL, "5..");
    CHECK_RUN("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
              NULL, "6");
    CHECK_RUN("{% set a, b = 1, 2 %}{{ b }}{{ a }}", NULL, "21");
    CHECK_RUN("{% set t %}<{{ 1 + 1 }}>{% endset %}[{{ t }}]", NULL, "[<2>]");
    CHECK_RUN("{% set t | upper %}abc{% endset %}{{ t }}", NULL, "ABC");
    CHECK_RUN("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", NULL, "3[]");
    CHECK_RUN("{% filter upper %}a{{ 'b' }}{% endfilter %}", NULL, "AB");
    CHECK_RUN("{% raw %}{{ x }}{% if %}{% endraw %}", NULL, "{{ x }}{% if %}");
    CHECK_RUN("a{# a comment {{ x }} #}b", NULL, "ab");
    CHECK_RUN("{% print 1, 'x' %}", NULL, "1x");
    CHECK_RUN("{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{% set j = joiner('-') %}"
              "{% for x in [1, 2] %}{{ j() }}{{ x }}{% endfor %}",
              NULL, "aba1-2");
}

static void test_whitespace(void)
{
    CHECK_RUN("a\n", NULL, "a");
    CHECK_RUN("a\n\n", NULL, "a\n");
    CHECK_RUN("a\r\nb\rc\r\n", NULL, "a\nb\nc");
    CHECK_RUN("<ul>\n  {%- for x in xs %}\n  <li>{{ x }}</li>\n  {%- endfor %}\n</ul>", "{\"xs\": [1, 2]}",
              "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>");
    CHECK_RUN("a  {%- if true -%}  b  {%- endif -%}  c", NULL, "abc");
    CHECK_RUN("a {{- 1 -}} b {#- c -#} d", NULL, "a1bd");
    CHECK_RUN("{% if true %}\nx\n{% endif %}\n", NULL, "\nx\n");
    CHECK_RUN("a {%- raw -%}  {{ }}  {%- endraw -%} b", NULL, "a{{ }}b");
    CHECK_RUN("a {%+ if true %}b{% endif +%} c", NULL, "a b c");
    CHECK_RUN("a\xc2\xa0{{- 'b' -}}\xc2\xa0" "c", NULL, "abc"); /* Unicode spaces too */
}

static void test_inheritance(void)
{
    CHECK_INT(add("base.txt", "<{% block head %}H{% endblock %}|{% block body %}B{% block inner %}I{% endblock %}"
                              "{% endblock %}>"),
              0);
    CHECK_INT(add("mid.txt", "{% extends 'base.txt' %}{% block body %}M[{{ super() }}]{% endblock %}"), 0);
    CHECK_INT(add("leaf.txt", "ignored{% extends 'mid.txt' %}{% block inner %}L{{ super() }}{% endblock %}"
                              "{% block head %}{{ self.inner() }}{% endblock head %}"),
              0);
    CHECK_STR(render("base.txt", NULL), "<H|BI>");
    CHECK_STR(render("mid.txt", NULL), "<H|M[BI]>");
    CHECK_STR(render("leaf.txt", NULL), "ignored<LI|M[BLI]>");
    /* a child's top-level set is visible in the blocks; variable parent names */
    CHECK_INT(add("child.txt", "{% extends parent %}{% set who = 'c' %}{% block head %}{{ who }}{% endblock %}"), 0);
    CHECK_STR(render("child.txt", "{\"parent\": \"base.txt\"}"), "<c|BI>");
    CHECK(render("child.txt", "{\"parent\": \"nope.txt\"}") == NULL);
    CHECK(strstr(err_buf, "child.txt:1: template 'nope.txt' not found") != NULL);
    /* blocks do not see loop variables unless scoped */
    CHECK_INT(add("loopbase.txt", "{% for x in [1, 2] %}{% block a %}{{ x }}{% endblock %}"
                                  "{% block b scoped %}{{ x }}{% endblock %}{% endfor %}"),
              0);
    CHECK_STR(render("loopbase.txt", NULL), "12");
    CHECK_RENDER_ERROR("{% extends 'base.txt' %}{% extends 'mid.txt' %}", NULL, "extended multiple times");
    CHECK_INT(add("req.txt", "[{% block r required %}{% endblock %}]"), 0);
    CHECK(render("req.txt", NULL) == NULL);
    CHECK(strstr(err_buf, "Required block 'r' not found") != NULL);
    CHECK_INT(add("reqchild.txt", "{% extends 'req.txt' %}{% block r %}ok{% endblock %}"), 0);
    CHECK_STR(render("reqchild.txt", NULL), "[ok]");
}

static void test_include_import(void)
{
    CHECK_INT(add("row.txt", "<{{ item }}{{ loop is defined }}>"), 0);
    CHECK_RUN("{% for item in [1, 2] %}{% include 'row.txt' %}{% endfor %}", NULL, "<1False><2False>");
    CHECK_RUN("{% set item = 'v' %}{% include 'row.txt' without context %}", NULL, "<False>");
    CHECK_RUN("{% include 'nope.txt' ignore missing %}ok", NULL, "ok");
    CHECK_RUN("{% include ['nope.txt', 'row.txt'] %}", "{\"item\": 3}", "<3False>");
    CHECK_RENDER_ERROR("{% include 'nope.txt' %}", NULL, "template 'nope.txt' not found");
    CHECK_INT(add("forms.txt", "{% set version = 2 %}{% macro field(name, value='', type='text') -%}"
                               "<input type=\"{{ type }}\" name=\"{{ name }}\" value=\"{{ value }}\">"
                               "{%- endmacro %}{% macro _private() %}p{% endmacro %}"),
              0);
    CHECK_RUN("{% import 'forms.txt' as forms %}{{ forms.field('q') }}{{ forms.version }}", NULL,
              "<input type=\"text\" name=\"q\" value=\"\">2");
    CHECK_RUN("{% from 'forms.txt' import field as f, version %}{{ f('p', type='password', value=version) }}", NULL,
              "<input type=\"password\" name=\"p\" value=\"2\">");
    CHECK_SYNTAX_ERROR("{% from 'forms.txt' import _private %}", "names starting with an underline");
    CHECK_RUN("{% import 'forms.txt' as forms %}[{{ forms._private }}]", NULL, "[]");
}

static void test_macros(void)
{
    CHECK_RUN("{% macro m(a, b=1) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(2, 3) }} {{ m(b=4, a=5) }}", NULL,
              "1-1 2-3 5-4");
    CHECK_RUN("{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}", NULL, "[]");
    CHECK_RUN("{% macro m(a) %}{{ a }}{{ varargs|list }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", NULL,
              "1[2]{'k': 3}");
    CHECK_RENDER_ERROR("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, "takes not more than 1 argument(s)");
    CHECK_RENDER_ERROR("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", NULL, "takes no keyword argument 'b'");
    CHECK_RUN("{% macro list(xs) %}<ul>{% for x in xs %}<li>{{ caller(x) }}</li>{% endfor %}</ul>{% endmacro %}"
              "{% call(x) list([1, 2]) %}#{{ x }}{% endcall %}",
              NULL, "<ul><li>#1</li><li>#2</li></ul>");
    CHECK_RUN("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", NULL, "321");
    CHECK_RUN("{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", NULL, "2");
    CHECK_RENDER_ERROR("{{ m() }}{% macro m() %}x{% endmacro %}", NULL, "'m' is undefined");
}

static void test_autoescape(void)
{
    const char *ctx = "{\"s\": \"<b>&'\\\"\"}";
    CHECK_HTML("{{ s }}", ctx, "&lt;b&gt;&amp;&#39;&#34;");
    CHECK_RUN("{{ s }}", ctx, "<b>&'\"");
    CHECK_HTML("{{ s|safe }}|{{ s|e }}", ctx, "<b>&'\"|&lt;b&gt;&amp;&#39;&#34;");
    CHECK_HTML("{% macro m(x) %}<i>{{ x }}</i>{% endmacro %}{{ m(s) }}", ctx, "<i>&lt;b&gt;&amp;&#39;&#34;</i>");
    CHECK_HTML("{% set t %}<p>{% endset %}{{ t }}", NULL, "<p>");
    CHECK_HTML("{% autoescape false %}{{ s }}{% endautoescape %}{{ s }}", ctx, "<b>&'\"&lt;b&gt;&amp;&#39;&#34;");
    CHECK_RUN("{% autoescape true %}{{ s }}{% endautoescape %}", ctx, "&lt;b&gt;&amp;&#39;&#34;");
    CHECK_HTML("{% filter upper %}<a>{{ s }}{% endfilter %}", "{\"s\": \"<b>\"}", "<A>&LT;B&GT;");
    CHECK_INT(add("m.txt", "{% macro b(x) %}<b>{{ x }}</b>{% endmacro %}"), 0);
    CHECK_HTML("{% import 'm.txt' as m %}{{ m.b('<') }}", NULL, "<b><</b>");
    CHECK_INT(add("base.html", "{% block a %}<{{ s }}>{% endblock %}"), 0);
    CHECK_INT(add("kid.html", "{% extends 'base.html' %}{% block a %}[{{ super() }}]{% endblock %}"), 0);
    CHECK_STR(render("kid.html", "{\"s\": \"&\"}"), "[<&amp;>]");
    /* a Markup object from the host's JSON */
    CHECK_HTML("{{ m }}", "{\"m\": {\"__html__\": \"<br>\"}}", "<br>");
}

static json_t *fn_add(void *host, json_t *args, json_t *kwargs, void *arg)
{
    json_int_t sum = (json_int_t)(intptr_t)arg;
    size_t i;
    json_t *v;
    json_array_foreach(args, i, v) sum += json_integer_value(v);
    json_t *extra = json_object_get(kwargs, "extra");
    if (extra)
        sum += json_integer_value(extra);
    return json_integer(sum);
}

static json_t *fn_shout(void *host, json_t *args, json_t *kwargs, void *arg)
{
    const char *s = json_string_value(json_array_get(args, 0));
    char buf[64];
    snprintf(buf, sizeof buf, "%s!", s ? s : "?");
    return json_string(buf);
}

static json_t *fn_fail(void *host, json_t *args, json_t *kwargs, void *arg) { return NULL; }

static void test_host(void)
{
    CHECK_INT(tpl_env_register(env, false, "add", fn_add, (void *)(intptr_t)100), 0);
    CHECK_INT(tpl_env_register(env, true, "shout", fn_shout, NULL), 0);
    CHECK_INT(tpl_env_register(env, false, "broken", fn_fail, NULL), 0);
    CHECK_RUN("{{ add(1, 2, extra=3) }} {{ 'hi'|shout }}", NULL, "106 hi!");
    CHECK_RENDER_ERROR("x\n{{ broken() }}", NULL, "t.txt:2: broken() failed");
    /* a context variable wins over a registered global of the same name */
    CHECK_RUN("{{ add }}", "{\"add\": \"ctx\"}", "ctx");
    json_t *names = json_pack("{s:s, s:{s:i}}", "site", "Carafe", "g", "n", 7);
    tpl_host host = {.data = names, .lookup = host_lookup};
    CHECK_INT(add("h.txt", "{{ site }} {{ g.n }} {{ nothing is defined }} {{ site }}"), 0);
    CHECK_STR(render_host("h.txt", NULL, &host), "Carafe 7 False Carafe");
    CHECK_STR(render_host("h.txt", "{\"site\": \"mine\"}", &host), "mine 7 False mine");
    json_decref(names);
}

static void test_errors(void)
{
    /* syntax errors: name:line:col and Jinja's messages */
    CHECK_SYNTAX_ERROR("a\nb\n{% foo %}", "bad.txt:3:4: Encountered unknown tag 'foo'.");
    CHECK_SYNTAX_ERROR("{% for x in y %}\n\n", "bad.txt:1:");
    CHECK_SYNTAX_ERROR("{% for x in y %}\nx\n", "Unexpected end of template. Jinja was looking for the "
                                                "following tags: 'endfor' or 'else'. The innermost block "
                                                "that needs to be closed is 'for'.");
    CHECK_SYNTAX_ERROR("{% if x %}\n{% endfor %}", "bad.txt:2:4: Encountered unknown tag 'endfor'.");
    CHECK_SYNTAX_ERROR("line\n{{ x|nosuch }}", "bad.txt:2:1: No filter named 'nosuch'.");
    CHECK_SYNTAX_ERROR("{{ x is nosuch }}", "No test named 'nosuch'.");
    CHECK_SYNTAX_ERROR("{{ x|nosuch }}\n{{ (1 }}", "bad.txt:2:"); /* the syntax error wins */
    CHECK_SYNTAX_ERROR("{{ 1 +  }}", "bad.txt:1:9: unexpected 'end of print statement'");
    CHECK_SYNTAX_ERROR("\n{{ x ", "bad.txt:2:");
    CHECK_SYNTAX_ERROR("{# open", "Missing end of comment tag");
    CHECK_SYNTAX_ERROR("{{ 'abc }}", "unexpected char");
    CHECK_SYNTAX_ERROR("{{ x ) }}", "unexpected ')'");
    CHECK_SYNTAX_ERROR("{% block a %}{% endblock %}{% block a %}{% endblock %}", "block 'a' defined twice");
    CHECK_SYNTAX_ERROR("{% set 1 = 2 %}", "can't assign to 'const'");
    CHECK_SYNTAX_ERROR("{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default argument");
    /* an unknown filter inside an if fails only when run, as in Jinja 3 */
    CHECK_RUN("{% if false %}{{ x|nosuch }}{% endif %}ok", NULL, "ok");
    CHECK_RENDER_ERROR("{% if true %}\n{{ x|nosuch }}{% endif %}", NULL, "t.txt:2: No filter named 'nosuch' found.");
    /* render errors: name:line */
    CHECK_RENDER_ERROR("a\nb\n{{ x.y.z }}", NULL, "t.txt:3: ");
    CHECK_RENDER_ERROR("{{ 1 / 0 }}", NULL, "t.txt:1: ");
    CHECK_RENDER_ERROR("{% for a, b in [[1]] %}{% endfor %}", NULL, "not enough values to unpack (expected 2, got 1)");
    CHECK_RENDER_ERROR("{{ 'x'() }}", NULL, "'str' object is not callable");
    CHECK(render("does-not-exist.txt", NULL) == NULL);
    CHECK(strstr(err_buf, "not found") != NULL);
}

static void test_bounds(void)
{
    char *deep = malloc(4096);
    /* nesting the parser refuses */
    size_t n = 0;
    n += (size_t)sprintf(deep + n, "{{ ");
    for (int i = 0; i < 300; i++)
        deep[n++] = '(';
    deep[n++] = '1';
    for (int i = 0; i < 300; i++)
        deep[n++] = ')';
    strcpy(deep + n, " }}");
    CHECK_SYNTAX_ERROR(deep, "nested too deeply");
    n = 0;
    for (int i = 0; i < 150; i++)
        n += (size_t)sprintf(deep + n, "{%% if 1 %%}");
    deep[n] = 0;
    CHECK_SYNTAX_ERROR(deep, "nested too deeply");
    n = (size_t)sprintf(deep, "{{ 1");
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(deep + n, "+1");
    strcpy(deep + n, " }}");
    CHECK_SYNTAX_ERROR(deep, "nested too deeply"); /* a tall tree, not brackets */
    free(deep);
    /* recursion at render time */
    CHECK_INT(add("self.txt", "x{% include 'self.txt' %}"), 0);
    CHECK(render("self.txt", NULL) == NULL);
    CHECK(strstr(err_buf, "maximum recursion depth exceeded") != NULL);
    CHECK_RENDER_ERROR("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, "maximum recursion depth exceeded");
    CHECK_INT(add("ea.txt", "{% extends 'eb.txt' %}"), 0);
    CHECK_INT(add("eb.txt", "{% extends 'ea.txt' %}"), 0);
    CHECK(render("ea.txt", NULL) == NULL);
    CHECK(strstr(err_buf, "maximum recursion depth") != NULL);
    /* size, steps, range */
    CHECK_RENDER_ERROR("{{ range(100001)|length }}", NULL, "Range too big");
    CHECK_RUN("{{ range(100000)|length }}", NULL, "100000");
    CHECK_RENDER_ERROR("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", NULL,
                       "too many steps");
    CHECK_RENDER_ERROR("{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}", NULL,
                       "output is too large");
}

static void test_load_dir(void)
{
    char dir[] = "/tmp/cf-test-tpl-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/auth", dir);
    CHECK_INT(mkdir(path, 0700), 0);
    struct {
        const char *name, *text;
    } files[] = {
        {"base.html", "<title>{% block title %}{% endblock %}</title>\n"},
        {"auth/login.html", "{% extends 'base.html' %}{% block title %}Log in {{ user }}{% endblock %}\n"},
        {"bad.txt", "ok\n{% if %}"},
    };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        fputs(files[i].text, f);
        fclose(f);
    }
    tpl_env *saved = env;
    env = tpl_env_new();
    char err[512];
    CHECK_INT(tpl_env_load_dir(env, dir, err, sizeof err), -1);
    char want[300];
    snprintf(want, sizeof want, "%s/bad.txt:2:", dir);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    snprintf(path, sizeof path, "%s/bad.txt", dir);
    unlink(path);
    tpl_env_free(env);
    env = tpl_env_new();
    CHECK_INT(tpl_env_load_dir(env, dir, err, sizeof err), 0);
    CHECK(tpl_env_has(env, "auth/login.html"));
    CHECK(!tpl_env_has(env, "bad.txt"));
    CHECK_STR(render("auth/login.html", "{\"user\": \"<ann>\"}"), "<title>Log in &lt;ann&gt;</title>");
    tpl_env_free(env);
    env = saved;
    snprintf(path, sizeof path, "%s/auth/login.html", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/base.html", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/auth", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    env = tpl_env_new();
    test_expressions();
    test_statements();
    test_whitespace();
    test_inheritance();
    test_include_import();
    test_macros();
    test_autoescape();
    test_host();
    test_errors();
    test_bounds();
    test_load_dir();
    tpl_env_free(env);
    return CHECK_DONE();
}
