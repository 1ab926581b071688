// Kernel command line: the tokenizer against cases worked out from next_arg() (lib/cmdline.c) and
// parse_args() (kernel/params.c), and the printer by round trip.
#include <gtest/gtest.h>

#include <activate/kernel_cmdline.hpp>

namespace activate {
namespace {}  // namespace

void PrintTo(const KernelParam& param, std::ostream* os) {
    *os << '[' << param.name << (param.value ? "=" + *param.value : std::string()) << ']';
}

namespace {

KernelParam p(std::string name) { return {std::move(name), std::nullopt}; }
KernelParam p(std::string name, std::string value) { return {std::move(name), std::move(value)}; }

std::string roundtrip_text(const KernelCmdline& cmdline) {
    auto text = format_kernel_cmdline(cmdline);
    EXPECT_TRUE(text.ok()) << text.error().message();
    return text.ok() ? *text : std::string();
}

TEST(KernelCmdline, SplitsOnKernelWhitespaceIncludingLatin1NoBreakSpace) {
    auto c = parse_kernel_cmdline(
        " \tquiet\nro\v\fa=1\r\xa0"
        "b \n");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("quiet"), p("ro"), p("a", "1"), p("b")}));
    EXPECT_TRUE(c.init_args.empty());
}

TEST(KernelCmdline, NonBreakingSpaceIsNotUtf8Aware) {
    // The kernel looks at bytes: the UTF-8 encoding of U+00A0 is C2 A0, and A0 alone splits.
    auto c = parse_kernel_cmdline(
        "a\xc2\xa0"
        "b");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("a\xc2"), p("b")}));
}

TEST(KernelCmdline, OtherControlBytesAreNotWhitespace) {
    auto c = parse_kernel_cmdline(
        "a\x1c"
        "b\x7f"
        "c");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("a\x1c"
                                                    "b\x7f"
                                                    "c")}));
}

TEST(KernelCmdline, FirstEqualsSplits) {
    auto c = parse_kernel_cmdline("root=UUID=abc= x= =y ==z");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("root", "UUID=abc="), p("x", ""),
                                                  // An '=' as first byte never splits.
                                                  p("=y"), p("=", "z")}));
}

TEST(KernelCmdline, QuotesGroupAndAreRemovedLikeTheKernel) {
    auto c = parse_kernel_cmdline(R"(foo="a b" "bar baz" "k=v w" e="" q=" x="a b"c mid"dle x y"z)");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{
                            p("foo", "a b"),
                            p("bar baz"),
                            p("k", "v w"),
                            p("e", ""),
                            // The quote opened after q= closes at x=", so the space after `a`
                            // ends the word; the leading value quote goes, the inner one stays.
                            p("q", R"( x="a)"),
                            p(R"(b"c mid"dle)"),
                            p("x"),
                            p(R"(y"z)"),
                        }));
}

TEST(KernelCmdline, QuotesInsideAWordAreKept) {
    auto c = parse_kernel_cmdline(R"(x="a b"c mid"dle x"y a"b"=c "n"=v)");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{
                            // Only a leading value quote and the word's last byte are removed.
                            p("x", R"(a b"c)"),
                            p(R"(mid"dle x"y)"),
                            p(R"(a"b")", "c"),
                            // The opening quote goes, the '"' before '=' stays.
                            p(R"(n")", "v"),
                        }));
}

TEST(KernelCmdline, UnclosedQuoteRunsToTheEnd) {
    auto c = parse_kernel_cmdline(R"(a "b c d -- e)");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("a"), p("b c d -- e")}));
    EXPECT_TRUE(c.init_args.empty());
}

TEST(KernelCmdline, LoneQuotes) {
    EXPECT_EQ(parse_kernel_cmdline(R"(")").params, (std::vector<KernelParam>{p("")}));
    EXPECT_EQ(parse_kernel_cmdline(R"("")").params, (std::vector<KernelParam>{p("")}));
    EXPECT_EQ(parse_kernel_cmdline(R"(""")").params, (std::vector<KernelParam>{p("\"")}));
    EXPECT_EQ(parse_kernel_cmdline(R"(a=")").params, (std::vector<KernelParam>{p("a", "")}));
    EXPECT_EQ(parse_kernel_cmdline(R"("a=")").params, (std::vector<KernelParam>{p("a", "")}));
    EXPECT_EQ(parse_kernel_cmdline(R"("a"=)").params, (std::vector<KernelParam>{p("a\"", "")}));
}

TEST(KernelCmdline, DoubleDashEndsParametersAndGoesToInit) {
    auto c = parse_kernel_cmdline(R"(quiet -- single a=b "c d" e="f g" -- dropped)");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("quiet")}));
    // Init arguments are rejoined as name=value with the kernel's quote removal.
    EXPECT_EQ(c.init_args, (std::vector<std::string>{"single", "a=b", "c d", "e=f g"}));
}

TEST(KernelCmdline, QuotedDoubleDashAlsoEnds) {
    auto c = parse_kernel_cmdline(R"(a "--" b --= c)");
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("a")}));
    EXPECT_EQ(c.init_args, (std::vector<std::string>{"b", "--=", "c"}));
}

TEST(KernelCmdline, NulEndsTheLine) {
    auto c = parse_kernel_cmdline(std::string_view("a b\0c d", 7));
    EXPECT_EQ(c.params, (std::vector<KernelParam>{p("a"), p("b")}));
}

TEST(KernelCmdline, ProcCmdlineWithNewline) {
    auto c = parse_kernel_cmdline(
        "BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/sda1 ro console=tty0 console=ttyS0,115200n8\n");
    EXPECT_EQ(values_of(c, "console"), (std::vector<std::string>{"tty0", "ttyS0,115200n8"}));
    EXPECT_EQ(values_of(c, "root"), (std::vector<std::string>{"/dev/sda1"}));
    EXPECT_TRUE(values_of(c, "ro").empty());
    EXPECT_TRUE(values_of(c, "missing").empty());
}

TEST(KernelCmdline, ValuesOfSkipsBareOccurrencesAndKeepsEmptyValues) {
    auto c = parse_kernel_cmdline("console console= console=ttyS1 -- console=init");
    EXPECT_EQ(values_of(c, "console"), (std::vector<std::string>{"", "ttyS1"}));
}

TEST(KernelCmdline, PrintsPlainAndQuotesWhitespace) {
    KernelCmdline c;
    c.params = {p("quiet"),
                p("init", "/init"),
                p("console", "ttyS0,115200"),
                p("e", ""),
                p("dyndbg", "file x.c +p"),
                p("nbsp",
                  "a\xa0"
                  "b")};
    EXPECT_EQ(roundtrip_text(c),
              "quiet init=/init console=ttyS0,115200 e= dyndbg=\"file x.c +p\" nbsp=\"a\xa0"
              "b\"");
    EXPECT_EQ(parse_kernel_cmdline(roundtrip_text(c)), c);
}

TEST(KernelCmdline, PrintsNamesWithWhitespaceWholeQuoted) {
    KernelCmdline c;
    c.params = {p("a b"), p("c d", "e f")};
    EXPECT_EQ(roundtrip_text(c), R"("a b" "c d=e f")");
    EXPECT_EQ(parse_kernel_cmdline(roundtrip_text(c)), c);
}

TEST(KernelCmdline, PrintsInitArgumentsAfterDoubleDash) {
    KernelCmdline c;
    c.params = {p("quiet")};
    c.init_args = {"single", "x=y z", "--=", "=q"};
    EXPECT_EQ(roundtrip_text(c), R"(quiet -- single x="y z" --= =q)");
    EXPECT_EQ(parse_kernel_cmdline(roundtrip_text(c)), c);

    KernelCmdline only_init;
    only_init.init_args = {"a"};
    EXPECT_EQ(roundtrip_text(only_init), "-- a");
    EXPECT_EQ(parse_kernel_cmdline("-- a"), only_init);
}

TEST(KernelCmdline, EmptyPrintsEmpty) {
    EXPECT_EQ(roundtrip_text(KernelCmdline{}), "");
    EXPECT_EQ(parse_kernel_cmdline(""), KernelCmdline{});
    EXPECT_EQ(parse_kernel_cmdline(" \n "), KernelCmdline{});
}

// Values with quotes that still have a spelling the kernel reads back.
TEST(KernelCmdline, RoundTripsQuoteCases) {
    const std::vector<KernelCmdline> cases = {
        {{p("x", "\"abc\"")}, {}},
        {{p("x", "a\"b")}, {}},
        {{p("x", "a\"")}, {}},
        {{p("x", "\"")}, {}},
        {{p("x", "a b\"c\"")}, {}},
        {{p("x", "\"a b")}, {}},
        {{p("\"")}, {}},
        {{p("")}, {}},
        {{p("\"a\"")}, {}},
        {{p("n\"", "v")}, {}},
        {{p("=", "z")}, {}},
        {{p("=y")}, {}},
        {{p("a"), p("b\"")}, {}},
        {{}, {"x=\"", "a b", "\""}},
        // Only possible as the last word: an unclosed quote that runs to the end.
        {{p("x", "a\"b c")}, {}},
    };
    for (const KernelCmdline& c : cases) {
        auto text = format_kernel_cmdline(c);
        ASSERT_TRUE(text.ok()) << text.error().message();
        EXPECT_EQ(parse_kernel_cmdline(*text), c) << "printed as: " << *text;
    }
}

TEST(KernelCmdline, RoundTripsManyParsedLines) {
    const std::vector<std::string> lines = {
        "BOOT_IMAGE=/boot/vmlinuz root=UUID=1234 ro quiet splash",
        R"(a="b c" "d e" f g="" -- x "y z" w="1 2")",
        R"(x="a b"c mid"dle x"y "n"=v)",
        "dyndbg=\"module foo +p\" -- init args here",
        "\xa0lead\xa0trail\xa0",
        R"(q=" x="a b"c)",
        R"(a "b c d)",
        R"(""" "" ")",
        R"(==a ===b =)",
        R"(x=a"b c)",
    };
    for (const std::string& line : lines) {
        KernelCmdline parsed = parse_kernel_cmdline(line);
        auto text = format_kernel_cmdline(parsed);
        ASSERT_TRUE(text.ok()) << line << ": " << text.error().message();
        EXPECT_EQ(parse_kernel_cmdline(*text), parsed) << line << " printed as " << *text;
    }
}

TEST(KernelCmdline, RefusesWhatTheKernelCannotReadBack) {
    struct Case {
        KernelCmdline cmdline;
        std::string message_part;
    };
    const std::vector<Case> cases = {
        {{{p("a", std::string("b\0c", 3))}, {}}, "NUL"},
        {{{p(std::string("a\0", 2))}, {}}, "NUL"},
        {{{p("--")}, {}}, "\"--\""},
        {{{}, {"--"}}, "\"--\""},
        {{{p("", "v")}, {}}, "empty name"},
        {{{p("a=b", "c")}, {}}, "'=' in its name"},
        {{{p("x", "a b\""), p("next")}, {}}, "double quotes"},
        {{{p("x", "a \""), p("next")}, {}}, "double quotes"},
        {{{p("x", " \"")}, {"a"}}, "double quotes"},
        {{{}, {std::string("a\0", 2)}}, "NUL"},
    };
    for (const Case& c : cases) {
        auto text = format_kernel_cmdline(c.cmdline);
        ASSERT_FALSE(text.ok()) << "printed as " << *text;
        EXPECT_EQ(text.error().kind(), ErrorKind::input);
        EXPECT_NE(text.error().message().find(c.message_part), std::string::npos)
            << text.error().message();
    }
}

TEST(KernelCmdline, ANameWithEqualsAfterTheFirstByteIsOnlyPrintableWithoutValue) {
    // "a=b" as a name without value would read back as a=b with a value: refuse it.
    KernelCmdline c{{p("a=b")}, {}};
    EXPECT_FALSE(format_kernel_cmdline(c).ok());
}

}  // namespace
}  // namespace activate
