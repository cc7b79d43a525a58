/*
 * switch_x86_64.S — the coroutine context switch for x86_64 (System V).
 *
 * cf__ctx_switch(void **save_sp, void *load_sp) pushes the callee-saved
 * registers, stores the stack pointer in *save_sp, loads load_sp and pops
 * the registers saved there. The control bits of MXCSR and the x87 control
 * word (rounding mode, exception masks) are callee-saved too, so they go in
 * one 8-byte slot below the registers: a coroutine that changes its
 * rounding mode must not change it for the loop or for other coroutines.
 * Everything else is caller-saved per the ABI, so this is the whole
 * context. A new coroutine's stack is prepared by coro.c so that the first
 * switch "returns" into cf__coro_start with the coroutine in %rbx.
 */
#if defined(__x86_64__)
    .text
    .globl cf__ctx_switch
    .hidden cf__ctx_switch
    .type cf__ctx_switch, @function
cf__ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cf__ctx_switch, .-cf__ctx_switch

    .globl cf__coro_start
    .hidden cf__coro_start
    .type cf__coro_start, @function
cf__coro_start:
    movq %rbx, %rdi
    call cf__coro_main
    ud2                       /* cf__coro_main never returns */
    .size cf__coro_start, .-cf__coro_start
#endif
    .section .note.GNU-stack,"",@progbits
