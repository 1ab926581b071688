// What one run of the engine's pipeline carries from step to step: the run's inputs and what
// earlier steps produced. Created at the start of a run and dropped at its end (which releases
// the activation lock and closes the payload's descriptors).
#pragma once

#include <activate/activation_record.hpp>
#include <activate/agent_init.hpp>
#include <activate/engine.hpp>
#include <optional>
#include <string>

#include "net.pb.h"
#include "takeover.pb.h"

namespace activate {

struct Engine::RunState {
    // Inputs.
    int in_fd = -1, out_fd = -1;  // takeover: the protocol's stdin and stdout
    InstallRequest request;       // slot update
    bool detached_jump = false;

    // Produced by the steps.
    std::optional<FileLock> lock;
    Payload payload;  // prepared; moved into the StageRequest of a strategy that needs a kernel
    // Takeover.
    wire::TakeoverInit init;
    wire::AgentInit agent_init;
    wire::TakeoverResponse response;
    AgentKey key;
    bool responded = false;  // the client got its one TakeoverResponse (or stdout is gone)
    // Slot update.
    SlotPair slots;
    std::string record_file;
    ActivationRecord record;
    bool boot_next_set = false;  // by the boot-next step: undo_staging() clears it
};

}  // namespace activate
