// The takeover configuration of the pipeline and its stdio protocol: one TakeoverInit in, exactly
// one TakeoverResponse out, nothing else on stdout; the jump happens only after the response was
// written and stdout closed, and only when staging succeeded.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <activate/agent_init.hpp>
#include <activate/engine.hpp>
#include <activate/fd.hpp>
#include <activate/takeover_protocol.hpp>
#include <chrono>

#include "net.pb.h"
#include "pipeline_run.hpp"
#include "takeover.pb.h"

namespace activate {

Result<wire::TakeoverInit> parse_takeover_init(std::string_view bytes) {
    if (bytes.empty())
        return Error(ErrorKind::input, "stdin was empty: expected a serialized TakeoverInit");
    if (bytes.size() > kMaxTakeoverInitSize)
        return Error(ErrorKind::input, "TakeoverInit on stdin is larger than 1 MiB");
    wire::TakeoverInit init;
    if (!init.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        return Error(ErrorKind::input, "stdin is not a valid TakeoverInit protobuf (" +
                                           std::to_string(bytes.size()) + " bytes)");
    if (init.bmaas_endpoint().empty())
        return Error(ErrorKind::input, "TakeoverInit.bmaas_endpoint is empty");
    return init;
}

namespace {
// The message ends where the client closes stdin. `timeout` bounds the whole read, so a client
// that keeps stdin open (or trickles bytes) cannot hold the pipeline.
Result<wire::TakeoverInit> read_takeover_init(int fd, std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + timeout;
    std::string bytes;
    char buf[1 << 14];
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd, POLLIN, 0};
        const int ready = left.count() > 0 ? ::poll(&pfd, 1, int(left.count())) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0)
            return errno_error(ErrorKind::input, "waiting for the TakeoverInit on stdin");
        if (ready == 0)
            return Error(ErrorKind::input,
                         "no complete TakeoverInit on stdin within " +
                             std::to_string(timeout.count()) + " ms (policy input_timeout; " +
                             std::to_string(bytes.size()) +
                             " bytes arrived): the client must send the message and close stdin");
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return errno_error(ErrorKind::input, "reading the TakeoverInit from stdin");
        if (n == 0) break;
        if (bytes.size() + static_cast<size_t>(n) > kMaxTakeoverInitSize)
            return Error(ErrorKind::input, "TakeoverInit on stdin is larger than 1 MiB");
        bytes.append(buf, static_cast<size_t>(n));
    }
    return parse_takeover_init(bytes);
}

// Writes the response and closes `fd`, keeping the descriptor number pointing at /dev/null so
// that nothing written later can land in the protocol stream.
Status respond(int fd, const wire::TakeoverResponse& response) {
    Status written;
    if (!write_all(fd, response.SerializeAsString()))
        written = errno_error(ErrorKind::activation, "writing the TakeoverResponse");
    int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd >= 0) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
    } else {
        ::close(fd);
    }
    return written;
}
}  // namespace

// The takeover configuration of the pipeline. The message first: waiting for a client must not
// hold the lock, which would block mark-good and updates meanwhile (issue 12 §3). Until the
// response step, a failing step is answered as an error response (run_takeover); from it on a
// failure unloads the staged image: nobody will jump to it, or the client never got its key.
Pipeline Engine::build_takeover_pipeline() {
    Pipeline pipeline;
    pipeline.add({"read-takeover-init", "engine",
                  [this] {
                      return std::vector<PlanStep>{
                          {"read one TakeoverInit (at most 1 MiB) from stdin, within " +
                               std::to_string(policy_.input_timeout.count()) + " ms",
                           {"stdin"},
                           {}}};
                  },
                  [this]() -> Status {
                      log_.debug("waiting for the TakeoverInit on stdin (input_timeout " +
                                 std::to_string(policy_.input_timeout.count()) + " ms)");
                      ACTIVATE_ASSIGN(run_->init,
                                      read_takeover_init(run_->in_fd, policy_.input_timeout));
                      return {};
                  }});
    // Held until the detached second stage has jumped (see FileLock): a second takeover in the
    // meantime would replace the staged image under a client that already has its key.
    pipeline.add({"lock", "engine",
                  [this] {
                      return std::vector<PlanStep>{
                          {"take the activation lock (held by the second stage until the jump)",
                           {},
                           {policy_.lock_file}}};
                  },
                  [this]() -> Status {
                      ACTIVATE_ASSIGN(FileLock lock, take_lock());
                      run_->lock.emplace(std::move(lock));
                      log_.info("takeover requested for machine '" + run_->init.machine_id() + "'");
                      *run_->agent_init.mutable_takeover_init() = run_->init;
                      return {};
                  }});
    for (size_t i = 0; i < captures_.size(); ++i) {
        const std::string& name = policy_.captures[i].name;
        pipeline.add({"capture", name, [this, i] { return captures_[i]->plan(); },
                      [this, i, name]() -> Status {
                          Result<CaptureResult> captured = captures_[i]->capture();
                          if (!captured.ok())
                              return captured.error().with_context("capture " + name);
                          wire::Net net;
                          if (!net.ParseFromString(captured->network_config))
                              return Error(ErrorKind::internal,
                                           "capture " + name + " returned an invalid Net");
                          run_->agent_init.mutable_network_config()->MergeFrom(net);
                          for (const std::string& w : captured->warnings) {
                              log_.warning(name + ": " + w);
                              run_->response.mutable_success()->add_warning(w);
                          }
                          return {};
                      }});
    }
    pipeline.add({"agent-init", "engine",
                  [] {
                      return std::vector<PlanStep>{
                          {"generate the agent's Ed25519 key and build the AgentInit", {}, {}}};
                  },
                  [this]() -> Status {
                      ACTIVATE_ASSIGN(run_->key, generate_agent_key());
                      run_->agent_init.set_private_key(run_->key.secret_key.data(),
                                                       run_->key.secret_key.size());
                      return {};
                  }});
    pipeline.add({"prepare", policy_.payload.name, [this] { return payload_->plan_prepare(); },
                  [this]() -> Status {
                      PayloadRequest request;
                      request.agent_init = run_->agent_init.SerializeAsString();
                      Result<Payload> payload = payload_->prepare(request);
                      if (!payload.ok())
                          return payload.error().with_context("preparing the payload");
                      run_->payload = std::move(payload).value();
                      return check_kernel(run_->payload);
                  }});
    pipeline.add({"stage", policy_.activation.name, [this] { return activation_->plan_stage(); },
                  [this]() -> Status {
                      const std::string what = run_->payload.description;
                      Status staged = stage(std::nullopt);
                      if (!staged.ok()) return staged.error().with_context("staging the payload");
                      log_.info("staged " + what);
                      return {};
                  }});
    pipeline.add({"respond", "engine",
                  [] {
                      return std::vector<PlanStep>{
                          {"write one TakeoverResponse and close stdout", {}, {"stdout"}}};
                  },
                  [this]() -> Status {
                      wire::TakeoverSuccess* success = run_->response.mutable_success();
                      *success->mutable_init_message() = run_->init;
                      success->set_key(run_->key.public_key.data(), run_->key.public_key.size());
                      run_->responded = true;
                      Status answered = respond(run_->out_fd, run_->response);
                      if (!answered.ok())
                          return undo_staging(
                              answered.error().with_context("the client did not get its key"));
                      return {};
                  }});
    if (jumps())
        pipeline.add(jump_step([this]() -> Status {
            log_.info("jumping (" + policy_.mode + ") in " + std::to_string(policy_.delay.count()) +
                      " ms from a detached second stage");
            Status jumping = activation_->activate(policy_.delay, /*detached=*/true);
            if (!jumping.ok())
                return undo_staging(jumping.error().with_context(
                    "the client was already told the takeover succeeded, but no jump will "
                    "happen"));
            return jumping;
        }));
    return pipeline;
}

Status Engine::run_takeover(int in_fd, int out_fd) {
    if (policy_.protocol != Protocol::stdio_protobuf)
        return Error(ErrorKind::internal,
                     "run_takeover() on a policy without protocol "
                     "stdio-protobuf");
    run_ = std::make_unique<RunState>();
    run_->in_fd = in_fd;
    run_->out_fd = out_fd;
    Status result = pipeline_.run(log_);
    if (!result.ok() && !run_->responded) {
        // Answers the client; the error itself is logged once, by the caller that gets it back.
        wire::TakeoverResponse failed;
        failed.mutable_error()->set_message(result.error().message());
        Status written = respond(out_fd, failed);
        if (!written.ok()) log_.error(written.error().message());
    }
    if (result.ok() && !jumps()) log_.info("activation_mode none: staged, not jumping");
    run_.reset();
    return result;
}

}  // namespace activate
