// efivarfs variable files through a temp Sysroot: attribute word, single-write replacement,
// deletion and the immutable flag.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <activation_efi/efivars.hpp>
#include <algorithm>
#include <fstream>

#include "efi_fixture.hpp"

namespace activate::efi::test {
namespace {

using EfivarsTest = EfiVarsTest;

TEST_F(EfivarsTest, ReadsRecordedVariables) {
    auto order = vars_->read("BootOrder");
    ASSERT_TRUE(order.ok()) << order.error().message();
    ASSERT_TRUE(order->has_value());
    EXPECT_EQ((*order)->attributes, kBootVariableAttributes);
    EXPECT_EQ((*order)->data, read_var_file("BootOrder").substr(4));

    // BootCurrent is volatile: BS|RT without NV.
    auto current = vars_->read("BootCurrent");
    ASSERT_TRUE(current.ok());
    ASSERT_TRUE(current->has_value());
    EXPECT_EQ((*current)->attributes, kVariableBootserviceAccess | kVariableRuntimeAccess);

    auto absent = vars_->read("BootNext");
    ASSERT_TRUE(absent.ok());
    EXPECT_FALSE(absent->has_value());
}

TEST_F(EfivarsTest, ListsNamesOfTheGlobalVendor) {
    write_var_file("Other", std::string("\x07\0\0\0x", 5));
    std::ofstream(efivars_ / "Foreign-11111111-2222-3333-4444-555555555555") << "x";
    auto names = vars_->names();
    ASSERT_TRUE(names.ok());
    EXPECT_NE(std::find(names->begin(), names->end(), "Boot0007"), names->end());
    EXPECT_NE(std::find(names->begin(), names->end(), "BootOrder"), names->end());
    EXPECT_NE(std::find(names->begin(), names->end(), "Other"), names->end());
    EXPECT_EQ(std::find(names->begin(), names->end(), "Foreign"), names->end());
    EXPECT_TRUE(std::is_sorted(names->begin(), names->end()));
}

TEST_F(EfivarsTest, WriteReplacesTheWholeVariable) {
    ASSERT_TRUE(vars_->write("Test", Variable{7, "long old value"}).ok());
    EXPECT_EQ(read_var_file("Test"), std::string("\x07\0\0\0long old value", 18));
    ASSERT_TRUE(vars_->write("Test", Variable{6, "ab"}).ok());
    EXPECT_EQ(read_var_file("Test"), std::string("\x06\0\0\0"
                                                 "ab",
                                                 6));
}

TEST_F(EfivarsTest, RemoveDeletesAndToleratesAbsence) {
    ASSERT_TRUE(vars_->write("Test", Variable{7, "x"}).ok());
    ASSERT_TRUE(var_exists("Test"));
    ASSERT_TRUE(vars_->remove("Test").ok());
    EXPECT_FALSE(var_exists("Test"));
    EXPECT_TRUE(vars_->remove("Test").ok());
}

TEST_F(EfivarsTest, BadAttributeWordAndShortFileNameTheFile) {
    write_var_file("BootOrder", std::string("\x07\0\0\x80\0\0", 6));
    auto bad = vars_->read("BootOrder");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find(var_file("BootOrder")), std::string::npos)
        << bad.error().message();
    EXPECT_NE(bad.error().message().find("bad attribute word 0x80000007"), std::string::npos)
        << bad.error().message();

    // Runtime access without boot-service access is invalid (UEFI 2.10 §8.2).
    write_var_file("BootOrder", std::string("\x05\0\0\0\0\0", 6));
    EXPECT_FALSE(vars_->read("BootOrder").ok());

    write_var_file("BootNext", std::string("\x07\0", 2));
    auto short_file = vars_->read("BootNext");
    ASSERT_FALSE(short_file.ok());
    EXPECT_NE(short_file.error().message().find(var_file("BootNext")), std::string::npos);
    EXPECT_NE(short_file.error().message().find("too short"), std::string::npos);
}

// The kernel creates non-standard variables immutable; writing and deleting must clear that.
// Needs a file system with inode flags (ext4 /tmp) and CAP_LINUX_IMMUTABLE (root).
TEST_F(EfivarsTest, ClearsImmutableFlagBeforeWriteAndDelete) {
    ASSERT_TRUE(vars_->write("Locked", Variable{7, "old"}).ok());
    auto set_immutable = [&]() -> bool {
        UniqueFd fd(::open(var_file("Locked").c_str(), O_RDONLY | O_CLOEXEC));
        int flags = 0;
        if (!fd || ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) return false;
        flags |= FS_IMMUTABLE_FL;
        return ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) == 0;
    };
    if (!set_immutable()) GTEST_SKIP() << "no inode flags or no CAP_LINUX_IMMUTABLE here";
    // Immutable files refuse writers, so a plain open must fail now.
    EXPECT_LT(::open(var_file("Locked").c_str(), O_WRONLY | O_CLOEXEC), 0);

    ASSERT_TRUE(vars_->write("Locked", Variable{7, "new"}).ok());
    EXPECT_EQ(read_var_file("Locked"), std::string("\x07\0\0\0new", 7));

    ASSERT_TRUE(set_immutable());
    ASSERT_TRUE(vars_->remove("Locked").ok());
    EXPECT_FALSE(var_exists("Locked"));
}

TEST_F(EfivarsTest, MissingDirectorySaysWhatToCheck) {
    Efivarfs missing(*sysroot_, "/nonexistent/efivars");
    auto names = missing.names();
    ASSERT_FALSE(names.ok());
    EXPECT_NE(names.error().message().find("efivarfs"), std::string::npos);
    EXPECT_NE(names.error().message().find((root_ / "nonexistent/efivars").string()),
              std::string::npos);
}

}  // namespace
}  // namespace activate::efi::test
