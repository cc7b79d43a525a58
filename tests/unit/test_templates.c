/*
 * test_templates.c — the template engine (src/app/tpl_*.c) through
 * tpl_env_add and tpl_render: placeholder, filled in below.
 */
#include "app/tpl.h"
#include "check.h"

int main(void)
{
    return CHECK_DONE();
}
