/*
 * switch_aarch64.S — the coroutine context switch for aarch64 (AAPCS64).
 *
 * Same contract as the x86_64 version: save x19-x30 and d8-d15 (the
 * callee-saved set) on the current stack, swap stack pointers, restore.
 * A new coroutine starts with x30 = cf__coro_start and x19 = the coroutine.
 */
#if defined(__aarch64__)
    .text
    .globl cf__ctx_switch
    .hidden cf__ctx_switch
    .type cf__ctx_switch, %function
cf__ctx_switch:
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x2, sp
    str x2, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .size cf__ctx_switch, .-cf__ctx_switch

    .globl cf__coro_start
    .hidden cf__coro_start
    .type cf__coro_start, %function
cf__coro_start:
    mov x0, x19
    bl cf__coro_main
    brk #0
    .size cf__coro_start, .-cf__coro_start
#endif
    .section .note.GNU-stack,"",%progbits
