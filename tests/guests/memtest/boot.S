/* Multiboot (v1) entry of the bare-metal memtest guest.
 * Entered in 32-bit protected mode with %ebx = multiboot info. Identity-maps
 * the first 64 GiB with 2 MiB pages, switches to long mode and calls
 * memtest_main(mbi). */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, provide memory map */
#define MAPPED_GIB 64

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.section .text32, "ax"
	.code32
	.global _start
_start:
	cli
	mov	%ebx, %esi		/* keep the multiboot info pointer */

	mov	$__bss_start, %edi	/* zero .bss: page tables, stack */
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	shr	$2, %ecx
	xor	%eax, %eax
	rep stosl

	mov	$pdpt, %eax		/* PML4[0] -> PDPT */
	or	$3, %eax
	mov	%eax, pml4

	mov	$pdpt, %edi		/* PDPT[i] -> PD i, i < MAPPED_GIB */
	mov	$pd, %eax
	or	$3, %eax
	mov	$MAPPED_GIB, %ecx
1:	mov	%eax, (%edi)
	add	$4096, %eax
	add	$8, %edi
	loop	1b

	mov	$pd, %edi		/* PD entries: 2 MiB pages, identity */
	xor	%edx, %edx
	mov	$(MAPPED_GIB * 512), %ecx
2:	mov	%edx, %eax
	shl	$21, %eax
	or	$0x83, %eax		/* present, writable, large */
	mov	%eax, (%edi)
	mov	%edx, %eax
	shr	$11, %eax
	mov	%eax, 4(%edi)
	add	$8, %edi
	inc	%edx
	loop	2b

	mov	%cr4, %eax		/* PAE */
	or	$0x20, %eax
	mov	%eax, %cr4
	mov	$pml4, %eax
	mov	%eax, %cr3
	mov	$0xC0000080, %ecx	/* EFER.LME */
	rdmsr
	or	$0x100, %eax
	wrmsr
	mov	%cr0, %eax		/* paging on */
	or	$0x80000001, %eax
	mov	%eax, %cr0
	lgdt	gdt_ptr
	ljmp	$0x08, $long_entry

	.code64
long_entry:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	mov	$stack_top, %rsp
	mov	%esi, %edi		/* memtest_main(mbi) */
	call	memtest_main
3:	hlt
	jmp	3b

	.section .rodata
	.align 8
gdt:
	.quad	0
	.quad	0x00AF9A000000FFFF	/* 0x08: 64-bit code */
	.quad	0x00CF92000000FFFF	/* 0x10: data */
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt

	.section .bss
	.align 4096
pml4:	.skip	4096
pdpt:	.skip	4096
pd:	.skip	4096 * MAPPED_GIB
stack:	.skip	32768
stack_top:

	.section .note.GNU-stack, "", @progbits
