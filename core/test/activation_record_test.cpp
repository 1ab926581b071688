// The activation record file: round trip, RFC 3339 times, and strict reading (a malformed record
// is an error naming the file and the key, never a silently empty record).
#include <gtest/gtest.h>

#include <activate/activation_record.hpp>

#include "test_support.hpp"

namespace activate {
namespace {

WallTime at_ms(int64_t ms) {
    return WallTime(std::chrono::duration_cast<WallClock::duration>(std::chrono::milliseconds(ms)));
}

TEST(Rfc3339, FormatsUtcWithMillisecondsAndParsesItBack) {
    const WallTime t = at_ms(1767225600123);  // 2026-01-01T00:00:00.123Z
    EXPECT_EQ(format_rfc3339(t), "2026-01-01T00:00:00.123Z");
    EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00.123Z"), t);
    EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00Z"), at_ms(1767225600000));
    EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00.5Z"), at_ms(1767225600500));
    EXPECT_EQ(format_rfc3339(at_ms(-1)), "1969-12-31T23:59:59.999Z");
}

TEST(Rfc3339, RefusesAnythingElse) {
    for (const char* bad :
         {"", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00",
          "2026-01-01 00:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
          "+026-01-01T00:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Zx",
          "2026-01-01T24:00:00Z", " 2026-01-01T00:00:00Z"})
        EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

class ActivationRecordTest : public ::testing::Test {
  protected:
    std::string read_error(const std::string& content) {
        test::write_file(dir_ / "esp/EFI/activate/activation.json", content);
        auto r = ActivationRecord::read(sysroot_, kPath);
        if (r.ok()) return "";
        EXPECT_EQ(r.error().kind(), ErrorKind::input);
        return r.error().message();
    }
    const std::string kPath = "/esp/EFI/activate/activation.json";
    test::TempDir dir_;
    Sysroot sysroot_{dir_.path()};
};

TEST_F(ActivationRecordTest, PathIsInTheStateDirectory) {
    EXPECT_EQ(ActivationRecord::path_in("/esp/EFI/activate"), kPath);
    EXPECT_EQ(ActivationRecord::path_in("/esp/"), "/esp/activation.json");
}

TEST_F(ActivationRecordTest, MissingFileIsAnEmptyRecord) {
    auto r = ActivationRecord::read(sysroot_, kPath);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_FALSE(r->trial.has_value());
    EXPECT_EQ(r->slot('A').state, SlotState::unknown);
    EXPECT_FALSE(r->slot('A').since.has_value());
}

TEST_F(ActivationRecordTest, RoundTripKeepsEveryField) {
    ActivationRecord record;
    record.set_slot('A', SlotState::good, at_ms(1767225600000));
    record.set_slot('B', SlotState::failed, at_ms(1767225601000),
                    "check \"x\" exited with status 1");
    Trial t;
    t.state = TrialState::failed;
    t.target = 'B';
    t.previous = 'A';
    t.mode = "soft-reboot";
    t.handover = Handover::same_kernel;
    t.version = "1.2";
    t.jumped_at = at_ms(1767225600250);
    t.deadline_at = at_ms(1767226200250);
    t.target_entry = "Boot0003";
    t.previous_entry = "Boot0001";
    t.boot_id = "b1";
    t.assessed_at = at_ms(1767225660000);
    t.switch_time_ms = 59750;
    t.reason = "check \"x\" exited with status 1";
    t.boot_current = "Boot0003";
    t.warnings = {"firmware booted Boot0001 instead of Boot0003 (BootNext)"};
    t.pending = TrialPending::fallback;
    t.failed_boot_id = "b2";
    t.returned_at = at_ms(1767225700000);
    record.trial = t;
    ASSERT_TRUE(record.write(sysroot_, kPath).ok());

    const std::string text = test::read_file(dir_ / "esp/EFI/activate/activation.json");
    EXPECT_NE(text.find("\"format\": 1"), std::string::npos) << text;
    EXPECT_NE(text.find("\"jumped_at\": \"2026-01-01T00:00:00.250Z\""), std::string::npos) << text;
    EXPECT_NE(text.find("\"pending\": \"fallback\""), std::string::npos) << text;
    EXPECT_NE(text.find("\"mode\": \"soft-reboot\""), std::string::npos) << text;
    EXPECT_NE(text.find("\"handover\": \"same_kernel\""), std::string::npos) << text;

    auto back = ActivationRecord::read(sysroot_, kPath);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->slot('A').state, SlotState::good);
    EXPECT_EQ(back->slot('A').since, at_ms(1767225600000));
    EXPECT_EQ(back->slot('B').state, SlotState::failed);
    EXPECT_EQ(back->slot('B').reason, "check \"x\" exited with status 1");
    ASSERT_TRUE(back->trial.has_value());
    const Trial& r = *back->trial;
    EXPECT_EQ(r.state, TrialState::failed);
    EXPECT_EQ(r.target, 'B');
    EXPECT_EQ(r.previous, 'A');
    EXPECT_EQ(r.mode, "soft-reboot");
    EXPECT_EQ(r.handover, Handover::same_kernel);
    EXPECT_EQ(r.version, "1.2");
    EXPECT_EQ(r.jumped_at, t.jumped_at);
    EXPECT_EQ(r.deadline_at, t.deadline_at);
    EXPECT_EQ(r.target_entry, t.target_entry);
    EXPECT_EQ(r.previous_entry, t.previous_entry);
    EXPECT_EQ(r.boot_id, "b1");
    EXPECT_EQ(r.assessed_at, t.assessed_at);
    EXPECT_EQ(r.switch_time_ms, 59750);
    EXPECT_EQ(r.reason, t.reason);
    EXPECT_EQ(r.boot_current, t.boot_current);
    EXPECT_EQ(r.warnings, t.warnings);
    EXPECT_EQ(r.pending, TrialPending::fallback);
    EXPECT_EQ(r.failed_boot_id, "b2");
    EXPECT_EQ(r.returned_at, t.returned_at);

    // Rewriting what was read gives the same bytes.
    ASSERT_TRUE(back->write(sysroot_, kPath).ok());
    EXPECT_EQ(test::read_file(dir_ / "esp/EFI/activate/activation.json"), text);
}

TEST_F(ActivationRecordTest, MalformedRecordsAreErrorsNamingFileAndKey) {
    const std::string file = kPath;
    const std::string trial_head =
        R"({"format":1,"trial":{"state":"trying","target":"B","previous":"A","mode":"kexec",)"
        R"("jumped_at":"2026-01-01T00:00:00.000Z","deadline_at":"2026-01-01T00:10:00.000Z")";
    const std::pair<std::string, std::string> cases[] = {
        {"", "not a JSON object"},
        {"[]", "not a JSON object"},
        {R"({"slots":{}})", "\"format\" is not 1"},
        {R"({"format":2})", "\"format\" is not 1"},
        {R"({"format":1,"slots":[]})", "\"slots\" is not an object"},
        {R"({"format":1,"slots":{"C":{"state":"good"}}})", "slot \"C\" is neither A nor B"},
        {R"({"format":1,"slots":{"A":{"state":"fine"}}})",
         "slots.A.state \"fine\" is not a known value"},
        {R"({"format":1,"slots":{"A":{}}})", "slots.A.state is missing"},
        {R"({"format":1,"slots":{"A":{"state":"good","since":"yesterday"}}})",
         "slots.A.since \"yesterday\" is not an RFC 3339 UTC time"},
        {R"({"format":1,"slots":{"A":{"state":"failed","reason":7}}})",
         "slots.A.reason is not a string"},
        {R"({"format":1,"trial":[]})", "\"trial\" is not an object"},
        {trial_head + R"(,"mode":"kexec"}})", ""},  // duplicate keys: nlohmann keeps the last
        {R"({"format":1,"trial":{"state":"trying","target":"B","previous":"B","mode":"kexec",)"
         R"("jumped_at":"2026-01-01T00:00:00Z","deadline_at":"2026-01-01T00:00:00Z"}})",
         "trial.previous is the target slot itself"},
        {R"({"format":1,"trial":{"state":"trying","target":"B","previous":"A","mode":"usb",)"
         R"("jumped_at":"2026-01-01T00:00:00Z","deadline_at":"2026-01-01T00:00:00Z"}})",
         "trial.handover is missing (needed for mode \"usb\")"},
        {trial_head + R"(,"handover":"teleport"}})",
         "trial.handover \"teleport\" is not a known value"},
        {R"({"format":1,"trial":{"state":"trying","target":"B","previous":"A","mode":"kexec"}})",
         "trial.jumped_at is missing"},
        {trial_head + R"(,"switch_time_ms":"fast"}})", "trial.switch_time_ms is not an integer"},
        {trial_head + R"(,"warnings":"x"}})", "trial.warnings is not a list"},
        {trial_head + R"(,"pending":"fallback"}})",
         "trial.pending \"fallback\" does not go with state \"trying\""},
        {trial_head + R"(,"pending":"later"}})", "trial.pending \"later\" is not a known value"},
    };
    for (const auto& [content, message] : cases) {
        const std::string e = read_error(content);
        if (message.empty()) {
            EXPECT_EQ(e, "") << content;
            continue;
        }
        EXPECT_NE(e.find(file + " is not an activation record (" + message), std::string::npos)
            << content << "\n=> " << e;
        EXPECT_NE(e.find("repair it or delete it"), std::string::npos) << e;
    }
}

// Records written before the activation plugins declared their modes have no handover: their
// two modes each had one.
TEST_F(ActivationRecordTest, RecordsWithoutHandoverReadByTheirMode) {
    for (const auto& [mode, handover] : {std::pair{"kexec", Handover::staged_kernel},
                                         std::pair{"reboot", Handover::firmware_boot}}) {
        test::write_file(dir_ / "esp/EFI/activate/activation.json",
                         std::string(R"({"format":1,"trial":{"state":"trying","target":"B",)") +
                             R"("previous":"A","mode":")" + mode +
                             R"(","jumped_at":"2026-01-01T00:00:00.000Z",)" +
                             R"("deadline_at":"2026-01-01T00:10:00.000Z"}})");
        auto r = ActivationRecord::read(sysroot_, kPath);
        ASSERT_TRUE(r.ok()) << r.error().message();
        EXPECT_EQ(r->trial->mode, mode);
        EXPECT_EQ(r->trial->handover, handover) << mode;
    }
}

TEST_F(ActivationRecordTest, UnknownKeysAreIgnored) {
    EXPECT_EQ(read_error(R"({"format":1,"written_by":"a newer activate","slots":{"A":)"
                         R"({"state":"good","color":"green"}}})"),
              "");
}

TEST_F(ActivationRecordTest, WriteCreatesTheDirectoryAndNamesTheFileWhenItFails) {
    ActivationRecord record;
    record.set_slot('A', SlotState::good, at_ms(0));
    ASSERT_TRUE(record.write(sysroot_, kPath).ok());
    EXPECT_TRUE(std::filesystem::exists(dir_ / "esp/EFI/activate/activation.json"));
    // A file where the directory should be stops root too (tests run as root here).
    test::write_file(dir_ / "esp2", "not a directory");
    Status s = record.write(sysroot_, "/esp2/EFI/activate/activation.json");
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("/esp2"), std::string::npos) << s.error().message();
}

}  // namespace
}  // namespace activate
