// gtest helpers for activate::Result: a failed Result fails the test with its error message.
#pragma once

#include <gtest/gtest.h>

#define VM_ASSERT_OK(expr)                                  \
    do {                                                    \
        const auto& vm_r_ = (expr);                         \
        ASSERT_TRUE(vm_r_.ok()) << vm_r_.error().message(); \
    } while (0)

#define VM_CONCAT_INNER(a, b) a##b
#define VM_CONCAT(a, b) VM_CONCAT_INNER(a, b)
// VM_ASSERT_OK_AND_ASSIGN(auto x, f()); binds the value or fails the test.
#define VM_ASSERT_OK_AND_ASSIGN(decl, expr) \
    VM_ASSERT_OK_AND_ASSIGN_IMPL(VM_CONCAT(vm_r_, __LINE__), decl, expr)
#define VM_ASSERT_OK_AND_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                                \
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();   \
    decl = std::move(tmp).value()
