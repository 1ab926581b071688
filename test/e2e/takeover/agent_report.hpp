// The reference agent's report after a takeover, read from the machine's console by the
// busybox-source and stock-Debian takeover tests: the AGENT-STARTED line's JSON, and what every
// takeover must carry in it, the TakeoverInit's identity and the response's key.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"
#include "takeover.pb.h"
#include "takeover_source.hpp"

namespace activate::vm {

// Waits up to `timeout` for AGENT-STARTED or AGENT-ERROR, requires the former with a JSON report
// (into `report`), and checks the identity and the key. Callers check HasFatalFailure().
inline void ExpectAgentReportsItsIdentity(Machine& vm, milliseconds timeout,
                                          const wire::TakeoverInit& init,
                                          const wire::TakeoverSuccess& success,
                                          nlohmann::json& report) {
    VM_ASSERT_OK_AND_ASSIGN(auto agent, vm.wait_for_line("AGENT-(STARTED|ERROR) (.*)", timeout));
    ASSERT_EQ(agent.groups[1], "STARTED") << agent.line;
    report = nlohmann::json::parse(agent.groups[2], nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << agent.groups[2];
    std::fprintf(stderr, "agent report: %s\n", report.dump().c_str());

    EXPECT_EQ(report.value("machine_id", ""), init.machine_id());
    EXPECT_EQ(report.value("bmaas_endpoint", ""), init.bmaas_endpoint());
    EXPECT_EQ(report.value("ca_certificate_bytes", -1), 600);
    EXPECT_EQ(report.value("public_key", ""), Hex(success.key()));
    EXPECT_EQ(report.value("public_key_matches", false), true);
}

}  // namespace activate::vm
