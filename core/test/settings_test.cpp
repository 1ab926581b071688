#include <activate/settings.hpp>
#include <gtest/gtest.h>

namespace activate {
namespace {

Settings parse(const std::string& yaml) {
    return Settings(YAML::Load(yaml), "p.yaml", "payload.settings");
}

TEST(Settings, ReadsTypedValuesAndDefaults) {
    Settings s = parse("disk: /dev/vda\ncount: 7\nflag: true\nlist: [a, b]\ndelay: 1.5s\n");
    EXPECT_EQ(*s.string("disk"), "/dev/vda");
    EXPECT_EQ(*s.integer_or("count", 0, 0, 10), 7);
    EXPECT_TRUE(*s.boolean_or("flag", false));
    EXPECT_EQ(*s.string_list_or("list", {}), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(s.duration_or("delay", {})->count(), 1500);
    EXPECT_EQ(*s.string_or("absent", "dflt"), "dflt");
    EXPECT_TRUE(s.finish().ok());
}

TEST(Settings, DurationsAcceptMillisecondsAndBareSeconds) {
    Settings s = parse("a: 500ms\nb: 5\n");
    EXPECT_EQ(s.duration_or("a", {})->count(), 500);
    EXPECT_EQ(s.duration_or("b", {})->count(), 5000);
    Settings bad = parse("a: soon\n");
    Result<std::chrono::milliseconds> r = bad.duration_or("a", {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("p.yaml:1:4: payload.settings.a"), std::string::npos)
        << r.error().message();
}

// The assessment's deadlines and timeouts are minutes long (policy: `deadline: 10m`).
TEST(Settings, DurationsAcceptMinutesAndHours) {
    Settings s = parse("a: 10m\nb: 1.5h\nc: 2 m\nd: 25h\ne: 5min\n");
    EXPECT_EQ(s.duration_or("a", {})->count(), 600000);
    EXPECT_EQ(s.duration_or("b", {})->count(), 5400000);
    EXPECT_EQ(s.duration_or("c", {})->count(), 120000);
    Result<std::chrono::milliseconds> day = s.duration_or("d", {});
    ASSERT_FALSE(day.ok());
    EXPECT_NE(day.error().message().find("longer than a day"), std::string::npos);
    Result<std::chrono::milliseconds> unit = s.duration_or("e", {});
    ASSERT_FALSE(unit.ok());
    EXPECT_NE(unit.error().message().find("expected a duration like 5, 5s, 500ms or 10m, got "
                                          "'5min'"),
              std::string::npos)
        << unit.error().message();
}

TEST(Settings, WrongTypeNamesFileLineColumnAndKey) {
    Settings s = parse("disk: /dev/vda\ncount: [1]\n");
    Result<int64_t> r = s.integer_or("count", 0, 0, 10);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::policy);
    EXPECT_EQ(r.error().message(), "p.yaml:2:8: payload.settings.count: expected an integer, got a list");
}

TEST(Settings, OutOfRangeAndNonIntegers) {
    Settings s = parse("a: 11\nb: 1x\n");
    EXPECT_FALSE(s.integer_or("a", 0, 0, 10).ok());
    EXPECT_FALSE(s.integer_or("b", 0, 0, 10).ok());
}

TEST(Settings, MissingRequiredKey) {
    Settings s = parse("other: 1\n");
    Result<std::string> r = s.string("disk");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("payload.settings.disk: required setting is missing"),
              std::string::npos);
}

TEST(Settings, UnknownKeyIsAnErrorAtItsPosition) {
    Settings s = parse("disk: /dev/vda\ndsik: typo\n");
    ASSERT_TRUE(s.string("disk").ok());
    Status st = s.finish();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("p.yaml:2:1: payload.settings.dsik: unknown setting"),
              std::string::npos)
        << st.error().message();
    EXPECT_NE(st.error().message().find("known here: disk"), std::string::npos);
}

TEST(Settings, BooleansAreStrict) {
    Settings s = parse("a: yes\n");
    EXPECT_FALSE(s.boolean_or("a", false).ok());
}

TEST(Settings, SectionListsHaveIndexedPaths) {
    Settings s(YAML::Load("captures:\n  - plugin: a\n  - 3\n"), "p.yaml", "");
    Result<std::vector<Settings>> r = s.section_list("captures");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("p.yaml:3:5: captures.1: expected a mapping"),
              std::string::npos)
        << r.error().message();
}

}  // namespace
}  // namespace activate

namespace activate {
namespace {

TEST(Settings, MalformedNumbersAndDurations) {
    Settings s(YAML::Load("a: '+'\nb: -3\nc: 1.2.3s\nd: .5s\ne: 5 ms\nf: 5d\n"), "p.yaml", "x");
    EXPECT_FALSE(s.integer_or("a", 0, -10, 10).ok());
    EXPECT_EQ(*s.integer_or("b", 0, -10, 10), -3);
    EXPECT_FALSE(s.duration_or("c", {}).ok());
    EXPECT_FALSE(s.duration_or("d", {}).ok());
    EXPECT_EQ(s.duration_or("e", {})->count(), 5);
    EXPECT_FALSE(s.duration_or("f", {}).ok());
}

}  // namespace
}  // namespace activate
