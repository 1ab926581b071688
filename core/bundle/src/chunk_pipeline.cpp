// See chunk_pipeline.hpp.
#include "chunk_pipeline.hpp"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace activate::bundle {

size_t default_verifier_count() {
    return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
}

namespace {

// One run of the stages: the reader thread (read_chunks), the verifier threads
// (verify_chunks), and the caller's thread, which sinks (run). The ordering rules, all under
// `mutex_`, through which a chunk's bytes are handed over too:
// - the reader fills buffer i % depth only once chunk i - depth was sunk (i < sunk_ + depth_),
//   and counts chunk i as filled only after its bytes are in the buffer;
// - each verifier takes the oldest filled chunk nobody took yet; chunks finish in any order;
// - the sink takes chunk i only once it was filled and its verification ended, in stream
//   order; a failed chunk, or a fill that failed before it, ends the run with that error;
// - after the last chunk every thread ends by itself, and they are joined before check();
// - on every return path the destructor stops and joins the threads before the buffers go.
class ChunkPipeline {
  public:
    ChunkPipeline(const ChunkStages& stages, size_t chunk_size, size_t verifiers)
        : stages_(stages),
          chunk_size_(chunk_size),
          verifying_(static_cast<bool>(stages.verify)),
          verifiers_(verifying_ ? std::max<size_t>(verifiers, 1) : 0),
          depth_(verifying_ ? verifiers_ + 2 : 3),
          slots_(depth_) {
        for (size_t i = 0; i < depth_; ++i)
            buffers_.push_back(std::make_unique_for_overwrite<uint8_t[]>(chunk_size));
    }
    ChunkPipeline(const ChunkPipeline&) = delete;
    ChunkPipeline& operator=(const ChunkPipeline&) = delete;
    ~ChunkPipeline() { stop_and_join(); }

    Result<uint64_t> run() {
        ACTIVATE_TRY(start_threads());
        uint64_t total = 0;
        for (uint64_t i = 0;; ++i) {
            ACTIVATE_ASSIGN(const Verified chunk, wait_verified(i));
            if (chunk.is_last) {
                // Once joined, what the threads computed is the caller's to check.
                join_threads();
                ACTIVATE_TRY(stages_.check());
                if (!chunk.bytes.empty()) ACTIVATE_TRY(stages_.sink(chunk.bytes));
                return total + chunk.bytes.size();
            }
            if (!chunk.bytes.empty()) ACTIVATE_TRY(stages_.sink(chunk.bytes));
            total += chunk.bytes.size();
            {
                std::lock_guard lock(mutex_);
                sunk_ = i + 1;
            }
            changed_.notify_all();
        }
    }

  private:
    enum class State { verifying, verified, failed };
    struct Slot {
        size_t size = 0;
        State state = State::verifying;
        std::optional<Error> error;
    };
    struct Verified {
        std::span<const uint8_t> bytes;
        bool is_last;
    };

    uint8_t* buffer(uint64_t i) const { return buffers_[i % depth_].get(); }

    Status start_threads() {
        try {
            reader_ = std::thread([this] { read_chunks(); });
            for (size_t i = 0; i < verifiers_; ++i) pool_.emplace_back([this] { verify_chunks(); });
        } catch (const std::system_error& e) {
            return Error(ErrorKind::internal,
                         std::string("cannot start a thread to copy with: ") + e.code().message());
        }
        return {};
    }

    void read_chunks() {
        for (uint64_t i = 0;; ++i) {
            {
                std::unique_lock lock(mutex_);
                changed_.wait(lock, [&] { return stop_ || i < sunk_ + depth_; });
                if (stop_) return;
            }
            Result<ChunkStages::Filled> got =
                stages_.fill(std::span<uint8_t>(buffer(i), chunk_size_));
            std::lock_guard lock(mutex_);
            if (!got.ok()) {
                fill_error_ = std::move(got).error();
            } else {
                slots_[i % depth_] = {
                    got->size, verifying_ ? State::verifying : State::verified, {}};
                if (got->end) last_ = i;
                filled_ = i + 1;
            }
            changed_.notify_all();
            if (fill_error_ || last_) return;
        }
    }

    void verify_chunks() {
        while (true) {
            uint64_t i = 0;
            size_t size = 0;
            {
                std::unique_lock lock(mutex_);
                changed_.wait(lock, [&] {
                    return stop_ || next_to_verify_ < filled_ || fill_error_ ||
                           (last_ && next_to_verify_ > *last_);
                });
                if (stop_ || next_to_verify_ >= filled_) return;
                i = next_to_verify_++;
                size = slots_[i % depth_].size;
            }
            Status verified = stages_.verify(i, std::span<const uint8_t>(buffer(i), size));
            std::lock_guard lock(mutex_);
            Slot& slot = slots_[i % depth_];
            if (verified.ok()) {
                slot.state = State::verified;
            } else {
                slot.state = State::failed;
                slot.error = std::move(verified).error();
            }
            changed_.notify_all();
        }
    }

    // Chunk i once it is filled and verified, or the error that keeps it from the sink.
    Result<Verified> wait_verified(uint64_t i) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] {
            return (filled_ > i && slots_[i % depth_].state != State::verifying) ||
                   (filled_ <= i && fill_error_);
        });
        if (filled_ <= i) return std::move(*fill_error_);
        Slot& slot = slots_[i % depth_];
        if (slot.state == State::failed) return std::move(*slot.error);
        return Verified{std::span<const uint8_t>(buffer(i), slot.size), last_ == i};
    }

    void join_threads() {
        if (reader_.joinable()) reader_.join();
        for (std::thread& t : pool_)
            if (t.joinable()) t.join();
    }

    void stop_and_join() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        changed_.notify_all();
        join_threads();
    }

    const ChunkStages& stages_;
    const size_t chunk_size_;
    const bool verifying_;
    const size_t verifiers_, depth_;
    std::vector<std::unique_ptr<uint8_t[]>> buffers_;

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Slot> slots_;
    uint64_t filled_ = 0, next_to_verify_ = 0, sunk_ = 0;
    std::optional<uint64_t> last_;
    std::optional<Error> fill_error_;  // the reader stopped at chunk `filled_`
    bool stop_ = false;

    std::thread reader_;
    std::vector<std::thread> pool_;
};

}  // namespace

Result<uint64_t> run_chunk_pipeline(const ChunkStages& stages, size_t chunk_size,
                                    size_t verifiers) {
    ChunkPipeline pipeline(stages, chunk_size, verifiers);
    return pipeline.run();
}

}  // namespace activate::bundle
