// The assertions the A/B end-to-end tests share (ab_test.cpp, assessment_test.cpp): results of
// AbWorld's steps, and what a boot and `activate status --json` must show for a slot that was
// marked good or cold-booted. Kept apart from ab_world.hpp, which the demo and the benchmark use
// without GoogleTest.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include "ab_world.hpp"

namespace activate::vm {

#define AB_ASSERT_OK(expr)                                  \
    do {                                                    \
        const auto& ab_r_ = (expr);                         \
        ASSERT_TRUE(ab_r_.ok()) << ab_r_.error().message(); \
    } while (0)
#define AB_CONCAT_INNER(a, b) a##b
#define AB_CONCAT(a, b) AB_CONCAT_INNER(a, b)
#define AB_ASSERT_OK_AND_ASSIGN(decl, expr) \
    AB_ASSERT_OK_AND_ASSIGN_IMPL(AB_CONCAT(ab_r_, __LINE__), decl, expr)
#define AB_ASSERT_OK_AND_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                                \
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();   \
    decl = std::move(tmp).value()

// A test on its own AbWorld, named (work directory, guest logs) after the test.
class AbFixture : public ::testing::Test, public AbWorld {
  protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        AB_ASSERT_OK(Init(std::string(info->test_suite_name()) + "." + info->name()));
    }
};

// Checks that `s` has `slot` running, booted through its own entry, first in BootOrder, and that
// every entry of `initial` (OVMF's own, from the first boot) is still in BootOrder.
inline void ExpectMarkedGood(const BootStatus& s, const std::string& slot,
                             const std::vector<std::string>& initial) {
    EXPECT_EQ(s.running, slot);
    const SlotStatus& r = s.slots.at(slot);
    EXPECT_EQ(r.role, "running");
    ASSERT_FALSE(r.entry.empty()) << "slot " << slot << " has no boot entry";
    EXPECT_TRUE(r.active);
    EXPECT_TRUE(r.booted) << "slot " << slot << " was not booted through its entry " << r.entry;
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), r.entry) << "BootOrder " << Join(s.boot_order);
    // OVMF re-sorts its own entries at boot, so only their presence is checked.
    for (const auto& e : initial) {
        EXPECT_NE(std::find(s.boot_order.begin(), s.boot_order.end(), e), s.boot_order.end())
            << "firmware entry " << e << " lost from BootOrder " << Join(s.boot_order);
    }
}

// Checks a boot of `variant` from `slot` through the slot's own entry: the root its cmdline names
// is that slot (the test OS checked that the slot holds the variant's image) and the firmware
// booted `entry`.
inline void ExpectBootedFrom(const AbWorld::Booted& b, const std::string& variant,
                             const std::string& slot, const std::string& entry) {
    EXPECT_EQ(b.variant, variant);
    EXPECT_EQ(b.slot, slot);
    EXPECT_EQ(b.root, "PARTLABEL=METROPOLIS-SYSTEM-" + slot) << b.cmdline;
    EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-" + variant) << "slot " << slot << " holds another image";
    EXPECT_EQ(b.boot_current, entry) << "not booted through slot " << slot << "'s entry";
}

// Checks the status of a cold boot (no BootNext) of `slot`, marked good before: the firmware
// went to `slot`'s entry because it is first in BootOrder.
inline void ExpectColdBooted(const BootStatus& s, const std::string& slot,
                             const std::string& entry) {
    EXPECT_EQ(s.running, slot);
    EXPECT_EQ(s.slots.at(slot).entry, entry);
    EXPECT_TRUE(s.slots.at(slot).booted) << "slot " << slot << " not booted through its entry";
    EXPECT_EQ(s.boot_next, "null");
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), entry) << Join(s.boot_order);
}

}  // namespace activate::vm
