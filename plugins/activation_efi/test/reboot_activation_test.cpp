// The "efi" activation in a temp sysroot: stage() unloads kexec and leaves BootNext to the engine
// (its boot-next step), activate() records a reboot instead of rebooting.
#include <linux/kexec.h>
#include <sys/mman.h>
#include <unistd.h>

#include <activation_efi/boot_control.hpp>
#include <activation_efi/reboot_activation.hpp>
#include <thread>

#include "efi_fixture.hpp"
#include "testdata.hpp"

namespace activate::efi::test {
namespace {

class RebootActivationTest : public EfiVarsTest {
  protected:
    void SetUp() override {
        EfiVarsTest::SetUp();
        control_ = std::make_unique<EfiBootControl>(*sysroot_, Log(&logger_, "efi"),
                                                    BootControlSettings{});
        machine_ = std::make_unique<RecordingMachine>(*sysroot_);
        activation_ =
            std::make_unique<RebootActivation>(*sysroot_, *machine_, Log(&logger_, "efi"));
        ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    }
    std::string reboot_record() const {
        const auto p = root_ / "run/activate/reboot";
        return std::filesystem::exists(p) ? read_whole_file(p.string()) : "";
    }
    Status stage(std::optional<Slot> target) {
        StageRequest request;
        request.target = std::move(target);
        return activation_->stage(request);
    }
    std::unique_ptr<EfiBootControl> control_;
    std::unique_ptr<RecordingMachine> machine_;
    std::unique_ptr<RebootActivation> activation_;
};

TEST_F(RebootActivationTest, DeclaresRebootByFirmwareOnly) {
    const std::vector<ActivationModeInfo> modes = activation_->modes();
    ASSERT_EQ(modes.size(), 1u);
    EXPECT_EQ(modes[0].name, "reboot");
    EXPECT_EQ(modes[0].handover, Handover::firmware_boot);
}

TEST_F(RebootActivationTest, StageUnloadsKexecAndLeavesBootNextToTheEngine) {
    // Something staged a kexec image earlier; a reboot would jump into it.
    UniqueFd kernel(memfd_create("kernel", MFD_CLOEXEC));
    ASSERT_TRUE(kernel.valid());
    ASSERT_EQ(::write(kernel.get(), "MZ", 2), 2);
    ASSERT_EQ(machine_->kexec_file_load(kernel.get(), -1, "console=ttyS0", KEXEC_FILE_NO_INITRAMFS),
              0);
    ASSERT_TRUE(*machine_->kexec_loaded());

    ASSERT_TRUE(stage(slot('B')).ok());
    EXPECT_FALSE(*machine_->kexec_loaded());
    EXPECT_FALSE(var_exists("BootNext"));
    EXPECT_EQ(reboot_record(), "");  // staging does not jump

    ASSERT_TRUE(activation_->unstage().ok());
    EXPECT_FALSE(*machine_->kexec_loaded());  // the unloaded image stays unloaded
}

TEST_F(RebootActivationTest, StageWithNothingLoadedIsFine) {
    ASSERT_FALSE(*machine_->kexec_loaded());
    ASSERT_TRUE(stage(slot('B')).ok());
    EXPECT_FALSE(*machine_->kexec_loaded());
}

TEST_F(RebootActivationTest, ActivateRecordsAReboot) {
    ASSERT_TRUE(stage(slot('B')).ok());
    ASSERT_TRUE(control_->boot_next(slot('B')).ok());  // the engine's boot-next step
    ASSERT_TRUE(activation_->activate(std::chrono::milliseconds(10), false).ok());
    EXPECT_EQ(reboot_record(), "reboot\n");
    // The ESP is unmounted before the reboot, through the machine (recorded under a sysroot).
    EXPECT_EQ(read_whole_file((root_ / "run/activate/unmount").string()), "/esp\n");
    EXPECT_TRUE(var_exists("BootNext"));  // the firmware consumes it, not us
}

TEST_F(RebootActivationTest, DetachedActivationReturnsAndRebootsLater) {
    ASSERT_TRUE(stage(slot('B')).ok());
    ASSERT_TRUE(activation_->activate(std::chrono::milliseconds(50), true).ok());
    // The second stage records the jump in the sysroot after its delay.
    for (int i = 0; i < 200 && reboot_record().empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    EXPECT_EQ(reboot_record(), "reboot\n");
}

TEST_F(RebootActivationTest, MisuseIsReported) {
    auto no_target = stage(std::nullopt);
    ASSERT_FALSE(no_target.ok());
    EXPECT_EQ(no_target.error().kind(), ErrorKind::policy);

    EXPECT_FALSE(activation_->activate(std::chrono::milliseconds(0), false).ok());
    EXPECT_EQ(reboot_record(), "");
    EXPECT_TRUE(activation_->unstage().ok());  // nothing staged, nothing to undo
}

// Undone, the stage allows no jump any more.
TEST_F(RebootActivationTest, NoJumpAfterUnstage) {
    ASSERT_TRUE(stage(slot('B')).ok());
    ASSERT_TRUE(activation_->unstage().ok());
    EXPECT_FALSE(activation_->activate(std::chrono::milliseconds(0), false).ok());
    EXPECT_EQ(reboot_record(), "");
}

}  // namespace
}  // namespace activate::efi::test
