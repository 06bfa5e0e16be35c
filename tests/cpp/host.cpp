// C++ smoke-test host for the websocket1c Native API add-in.
//
// Loads the library with dlopen and drives it only through its exports and virtual calls on
// the interfaces declared in abi/include/ws1c_native_api.h, so the C++ compiler decides the
// vtable slots and sub-object offsets (a cross-check of the Rust vtables).
//
// Build: g++ -std=c++17 -O1 -Wall -Wextra -I abi/include tests/cpp/host.cpp -ldl -o cpp-host
// Run:   ./cpp-host target/release/libwebsocket1c.so
// Needs the library built with the `test-hooks` feature (TestEcho/TestOut/TestNumber/TestPanic).

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ws1c_native_api.h"

// ---------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------

static int g_passed = 0;
static int g_failed = 0;

// Print one TAP-like line and count it; returns the condition.
static bool check(bool cond, const std::string& what) {
    std::printf("%s - %s\n", cond ? "ok" : "not ok", what.c_str());
    if (cond) {
        ++g_passed;
    } else {
        ++g_failed;
    }
    return cond;
}

// ---------------------------------------------------------------------------------------
// UTF-16 helpers
// ---------------------------------------------------------------------------------------

// UTF-16 -> UTF-8, for printing only.
static std::string utf8(const std::u16string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        uint32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < s.size() && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
            ++i;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
        } else if (c < 0x800) {
            out += static_cast<char>(0xC0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += static_cast<char>(0xE0 | (c >> 12));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (c >> 18));
            out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return out;
}

// NUL-terminated WCHAR_T string -> u16string (null -> empty).
static std::u16string from_wz(const WCHAR_T* s) {
    return s ? std::u16string(s) : std::u16string();
}

// Upper case for ASCII and Russian Cyrillic (А-Я, Ё).
static std::u16string to_upper(std::u16string s) {
    for (auto& c : s) {
        if (c >= u'a' && c <= u'z') c = static_cast<char16_t>(c - 0x20);
        else if (c >= u'а' && c <= u'я') c = static_cast<char16_t>(c - 0x20);
        else if (c == u'ё') c = u'Ё';
    }
    return s;
}

// Lower case for ASCII and Russian Cyrillic (а-я, ё).
static std::u16string to_lower(std::u16string s) {
    for (auto& c : s) {
        if (c >= u'A' && c <= u'Z') c = static_cast<char16_t>(c + 0x20);
        else if (c >= u'А' && c <= u'Я') c = static_cast<char16_t>(c + 0x20);
        else if (c == u'Ё') c = u'ё';
    }
    return s;
}

// ---------------------------------------------------------------------------------------
// Counting memory manager
// ---------------------------------------------------------------------------------------

class CountingMemory final : public IMemoryManager {
public:
    ~CountingMemory() override {
        // Release whatever the add-in leaked so that valgrind blames nothing on the host;
        // the leak itself is reported by the outstanding() check.
        for (auto& kv : live_) std::free(kv.first);
    }

    bool ADDIN_API AllocMemory(void** block, unsigned long bytes) override {
        if (!block) return false;
        void* p = std::malloc(bytes ? bytes : 1);
        *block = p;
        if (!p) return false;
        std::lock_guard<std::mutex> lock(mu_);
        live_[p] = bytes;
        return true;
    }

    void ADDIN_API FreeMemory(void** block) override {
        if (!block || !*block) return;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = live_.find(*block);
            if (it == live_.end()) {
                ++unknown_frees_;  // not ours: count it, never free it
            } else {
                std::free(it->first);
                live_.erase(it);
                freed_log_.push_back(*block);
            }
        }
        *block = nullptr;
    }

    // Number of live allocations.
    size_t outstanding() {
        std::lock_guard<std::mutex> lock(mu_);
        return live_.size();
    }
    // Number of FreeMemory calls with a pointer this manager never handed out.
    size_t unknown_frees() {
        std::lock_guard<std::mutex> lock(mu_);
        return unknown_frees_;
    }
    // Start recording freed pointers anew.
    void mark() {
        std::lock_guard<std::mutex> lock(mu_);
        freed_log_.clear();
    }
    // Pointers freed since mark().
    std::vector<void*> freed_since_mark() {
        std::lock_guard<std::mutex> lock(mu_);
        return freed_log_;
    }

    // Free a string returned by the add-in (names, RegisterExtensionAs).
    void free_str(const WCHAR_T* s) {
        void* p = const_cast<WCHAR_T*>(s);
        FreeMemory(&p);
    }

private:
    std::mutex mu_;
    std::map<void*, unsigned long> live_;
    std::vector<void*> freed_log_;
    size_t unknown_frees_ = 0;
};

// Put a copy of `s` into `v` as PWSTR allocated with `mm` (wstrLen without the NUL).
static void set_wstr(CountingMemory& mm, tVariant& v, const std::u16string& s) {
    std::memset(&v, 0, sizeof v);
    void* p = nullptr;
    mm.AllocMemory(&p, static_cast<unsigned long>((s.size() + 1) * sizeof(WCHAR_T)));
    std::memcpy(p, s.c_str(), (s.size() + 1) * sizeof(WCHAR_T));
    v.pwstrVal = static_cast<WCHAR_T*>(p);
    v.wstrLen = static_cast<uint32_t>(s.size());
    v.vt = VTYPE_PWSTR;
}

// Free the buffer of a PWSTR/PSTR/BLOB variant with `mm` and reset it to EMPTY.
static void clear_variant(CountingMemory& mm, tVariant& v) {
    if ((v.vt == VTYPE_PWSTR || v.vt == VTYPE_PSTR || v.vt == VTYPE_BLOB) && v.pstrVal) {
        void* p = v.pstrVal;
        mm.FreeMemory(&p);
    }
    std::memset(&v, 0, sizeof v);
}

// Text of a PWSTR variant (empty if it is not one).
static std::u16string variant_text(const tVariant& v) {
    if (v.vt != VTYPE_PWSTR || !v.pwstrVal) return std::u16string();
    return std::u16string(v.pwstrVal, v.wstrLen);
}

// Numeric value of any numeric variant; false if not numeric.
static bool variant_number(const tVariant& v, double& out) {
    switch (v.vt) {
        case VTYPE_I1: out = v.i8Val; return true;
        case VTYPE_I2: out = v.shortVal; return true;
        case VTYPE_I4: out = v.lVal; return true;
        case VTYPE_INT: out = v.intVal; return true;
        case VTYPE_UINT: out = v.uintVal; return true;
        case VTYPE_I8: out = static_cast<double>(v.llVal); return true;
        case VTYPE_UI1: out = v.ui8Val; return true;
        case VTYPE_UI2: out = v.ushortVal; return true;
        case VTYPE_UI4: out = v.ulVal; return true;
        case VTYPE_UI8: out = static_cast<double>(v.ullVal); return true;
        case VTYPE_R4: out = v.fltVal; return true;
        case VTYPE_R8: out = v.dblVal; return true;
        default: return false;
    }
}

// ---------------------------------------------------------------------------------------
// Connection (IAddInDefBaseEx) and the platform interfaces it hands out
// ---------------------------------------------------------------------------------------

class Connection;

// IPlatformInfo playing a thin client.
class PlatformInfo final : public IPlatformInfo {
public:
    explicit PlatformInfo(Connection& c) : conn_(c) {}
    const AppInfo* ADDIN_API GetPlatformInfo() override;

private:
    Connection& conn_;
    AppInfo info_{u"8.3.25.1000", u"ws1c cpp host", eAppThinClient};
};

// IMsgBox that answers "no" and shows nothing.
class MsgBox final : public IMsgBox {
public:
    explicit MsgBox(Connection& c) : conn_(c) {}
    bool ADDIN_API Confirm(const WCHAR_T* question, tVariant* answer) override;
    bool ADDIN_API Alert(const WCHAR_T* text) override;

private:
    Connection& conn_;
};

// IAttachedInfo reporting in-process attachment.
class AttachedInfo final : public IAttachedInfo {
public:
    explicit AttachedInfo(Connection& c) : conn_(c) {}
    AttachedType ADDIN_API GetAttachedInfo() override;

private:
    Connection& conn_;
};

// Records AddError/ExternalEvent from any thread; counts calls made after Done().
class Connection final : public IAddInDefBaseEx {
public:
    struct Event {
        std::u16string source, message, data;
    };

    // Count one incoming call (and whether it came after Done()).
    void touch() {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
    }

    bool ADDIN_API AddError(unsigned short, const WCHAR_T* source, const WCHAR_T* descr, long) override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
        errors_.push_back({from_wz(source), from_wz(descr)});
        return true;
    }
    bool ADDIN_API Read(WCHAR_T*, tVariant*, long* errCode, WCHAR_T** errText) override {
        touch();
        if (errCode) *errCode = 0;
        if (errText) *errText = nullptr;
        return false;
    }
    bool ADDIN_API Write(WCHAR_T*, tVariant*) override {
        touch();
        return false;
    }
    bool ADDIN_API RegisterProfileAs(WCHAR_T*) override {
        touch();
        return true;
    }
    bool ADDIN_API SetEventBufferDepth(long depth) override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
        depth_ = depth;
        depth_set_ = true;
        return true;
    }
    long ADDIN_API GetEventBufferDepth() override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
        return depth_;
    }
    bool ADDIN_API ExternalEvent(WCHAR_T* source, WCHAR_T* message, WCHAR_T* data) override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
        events_.push_back({from_wz(source), from_wz(message), from_wz(data)});
        return true;
    }
    void ADDIN_API CleanEventBuffer() override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) ++calls_after_done_;
        events_.clear();
    }
    bool ADDIN_API SetStatusLine(WCHAR_T*) override {
        touch();
        return true;
    }
    void ADDIN_API ResetStatusLine() override { touch(); }
    IInterface* ADDIN_API GetInterface(Interfaces which) override {
        touch();
        switch (which) {
            case eIMsgBox: return &msgbox_;
            case eIPlatformInfo: return &platform_;
            case eIAttachedInfo: return &attached_;
            default: return nullptr;
        }
    }

    // Called by the host right after it called Done() on the object.
    void mark_done() {
        std::lock_guard<std::mutex> lock(mu_);
        done_ = true;
    }
    size_t calls_after_done() {
        std::lock_guard<std::mutex> lock(mu_);
        return calls_after_done_;
    }
    size_t error_count() {
        std::lock_guard<std::mutex> lock(mu_);
        return errors_.size();
    }
    std::u16string last_error() {
        std::lock_guard<std::mutex> lock(mu_);
        return errors_.empty() ? std::u16string() : errors_.back().second;
    }
    bool depth_set() {
        std::lock_guard<std::mutex> lock(mu_);
        return depth_set_;
    }
    long depth() {
        std::lock_guard<std::mutex> lock(mu_);
        return depth_;
    }

private:
    std::mutex mu_;
    bool done_ = false;
    size_t calls_after_done_ = 0;
    long depth_ = 1;
    bool depth_set_ = false;
    std::vector<std::pair<std::u16string, std::u16string>> errors_;  // (source, description)
    std::vector<Event> events_;
    PlatformInfo platform_{*this};
    MsgBox msgbox_{*this};
    AttachedInfo attached_{*this};
};

const AppInfo* ADDIN_API PlatformInfo::GetPlatformInfo() {
    conn_.touch();
    return &info_;
}
bool ADDIN_API MsgBox::Confirm(const WCHAR_T*, tVariant* answer) {
    conn_.touch();
    if (answer) {
        std::memset(answer, 0, sizeof *answer);
        answer->bVal = false;
        answer->vt = VTYPE_BOOL;
    }
    return true;
}
bool ADDIN_API MsgBox::Alert(const WCHAR_T*) {
    conn_.touch();
    return true;
}
AttachedType ADDIN_API AttachedInfo::GetAttachedInfo() {
    conn_.touch();
    return eAttachedNotIsolated;
}

// ---------------------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------------------

struct Exports {
    GetClassNamesFn get_class_names = nullptr;
    GetClassObjectFn get_class_object = nullptr;
    DestroyObjectFn destroy_object = nullptr;
    SetPlatformCapabilitiesFn set_platform_capabilities = nullptr;
    GetAttachTypeFn get_attach_type = nullptr;
};

// Everything one object check needs.
struct Ctx {
    std::string cls;          // class name (for messages)
    ILanguageExtenderBase* le;  // the language-extender sub-object
    CountingMemory& mm;       // shared memory manager
    Connection& conn;         // this object's connection
};

// Call a method the way the platform does: CallAsFunc if HasRetVal, else CallAsProc.
// `params` may be empty (then a null array is passed). `ret` receives the result.
static bool call_method(Ctx& c, long idx, std::vector<tVariant>& params, tVariant& ret) {
    std::memset(&ret, 0, sizeof ret);
    tVariant* p = params.empty() ? nullptr : params.data();
    long n = static_cast<long>(params.size());
    if (c.le->HasRetVal(idx)) return c.le->CallAsFunc(idx, &ret, p, n);
    return c.le->CallAsProc(idx, p, n);
}

// Find a method by its English and Russian names; both must give the same index (or -1).
static long find_method(Ctx& c, const std::u16string& en, const std::u16string& ru) {
    long a = c.le->FindMethod(en.c_str());
    long b = c.le->FindMethod(ru.c_str());
    check(a >= 0 && a == b, c.cls + ": method " + utf8(en) + "/" + utf8(ru) + " found (" + std::to_string(a) +
                                 ", " + std::to_string(b) + ")");
    if (a >= 0) {
        const WCHAR_T* n0 = c.le->GetMethodName(a, 0);
        const WCHAR_T* n1 = c.le->GetMethodName(a, 1);
        check(from_wz(n0) == en && from_wz(n1) == ru,
              c.cls + ": GetMethodName(" + utf8(en) + ") = " + utf8(from_wz(n0)) + "/" + utf8(from_wz(n1)));
        c.mm.free_str(n0);
        c.mm.free_str(n1);
    }
    return a == b ? a : -1;
}

// Discovery of every property and method, as the platform does after creating an object.
static void discovery(Ctx& c) {
    long np = c.le->GetNProps();
    check(np >= 0, c.cls + ": GetNProps = " + std::to_string(np));
    bool names_ok = true, find_ok = true, read_ok = true;
    for (long i = 0; i < np; ++i) {
        for (long alias = 0; alias <= 1; ++alias) {
            const WCHAR_T* name = c.le->GetPropName(i, alias);
            if (!name) {
                names_ok = false;
                std::printf("# %s: GetPropName(%ld, %ld) is null\n", c.cls.c_str(), i, alias);
                continue;
            }
            std::u16string s = from_wz(name);
            c.mm.free_str(name);
            for (const auto& v : {s, to_upper(s), to_lower(s)}) {
                long found = c.le->FindProp(v.c_str());
                if (found != i) {
                    find_ok = false;
                    std::printf("# %s: FindProp(%s) = %ld, expected %ld\n", c.cls.c_str(), utf8(v).c_str(), found, i);
                }
            }
        }
        c.le->IsPropWritable(i);
        // TestPanicProp panics by design; the test-hooks checks below cover it.
        if (c.le->IsPropReadable(i) && i != c.le->FindProp(u"TestPanicProp")) {
            tVariant v;
            std::memset(&v, 0, sizeof v);
            if (!c.le->GetPropVal(i, &v)) {
                read_ok = false;
                std::printf("# %s: GetPropVal(%ld) failed on a readable property\n", c.cls.c_str(), i);
            }
            clear_variant(c.mm, v);
        }
    }
    check(names_ok, c.cls + ": GetPropName non-null for every property, aliases 0 and 1");
    check(find_ok, c.cls + ": FindProp finds every property name as is, upper and lower case");
    check(read_ok, c.cls + ": GetPropVal succeeds on every readable property");

    long nm = c.le->GetNMethods();
    check(nm >= 0, c.cls + ": GetNMethods = " + std::to_string(nm));
    names_ok = find_ok = true;
    bool params_ok = true;
    for (long i = 0; i < nm; ++i) {
        for (long alias = 0; alias <= 1; ++alias) {
            const WCHAR_T* name = c.le->GetMethodName(i, alias);
            if (!name) {
                names_ok = false;
                std::printf("# %s: GetMethodName(%ld, %ld) is null\n", c.cls.c_str(), i, alias);
                continue;
            }
            std::u16string s = from_wz(name);
            c.mm.free_str(name);
            for (const auto& v : {s, to_upper(s), to_lower(s)}) {
                long found = c.le->FindMethod(v.c_str());
                if (found != i) {
                    find_ok = false;
                    std::printf("# %s: FindMethod(%s) = %ld, expected %ld\n", c.cls.c_str(), utf8(v).c_str(), found,
                                i);
                }
            }
        }
        long n = c.le->GetNParams(i);
        if (n < 0) {
            params_ok = false;
            std::printf("# %s: GetNParams(%ld) = %ld\n", c.cls.c_str(), i, n);
        }
        c.le->HasRetVal(i);
        for (long k = 0; k < n; ++k) {
            tVariant v;
            std::memset(&v, 0, sizeof v);
            c.le->GetParamDefValue(i, k, &v);
            clear_variant(c.mm, v);
        }
    }
    check(names_ok, c.cls + ": GetMethodName non-null for every method, aliases 0 and 1");
    check(find_ok, c.cls + ": FindMethod finds every method name as is, upper and lower case");
    check(params_ok, c.cls + ": GetNParams >= 0 for every method (HasRetVal, GetParamDefValue called)");
}

// Members every object has; plus the class-specific ones.
static void required_members(Ctx& c, bool is_client) {
    long ed = find_method(c, u"ErrorDescription", u"ОписаниеОшибки");
    if (ed >= 0) {
        check(c.le->GetNParams(ed) == 0 && c.le->HasRetVal(ed), c.cls + ": ErrorDescription has 0 params and returns");
        tVariant ret;
        std::memset(&ret, 0, sizeof ret);
        bool ok = c.le->CallAsFunc(ed, &ret, nullptr, 0);
        check(ok && ret.vt == VTYPE_PWSTR, c.cls + ": ErrorDescription() returns a string");
        clear_variant(c.mm, ret);
    }

    long ver = c.le->FindProp(u"Version");
    check(ver >= 0 && ver == c.le->FindProp(u"Версия"), c.cls + ": property Version/Версия found");
    if (ver >= 0) {
        check(c.le->IsPropReadable(ver), c.cls + ": Version is readable");
        tVariant v;
        std::memset(&v, 0, sizeof v);
        bool ok = c.le->GetPropVal(ver, &v);
        check(ok && v.vt == VTYPE_PWSTR && v.wstrLen > 0,
              c.cls + ": Version = \"" + utf8(variant_text(v)) + "\" (non-empty string)");
        clear_variant(c.mm, v);
    }

    if (is_client) {
        long con = find_method(c, u"Connect", u"Подключиться");
        if (con >= 0) {
            check(c.le->GetNParams(con) == 2, c.cls + ": Connect has 2 params");
            tVariant v;
            std::memset(&v, 0, sizeof v);
            check(c.le->GetParamDefValue(con, 1, &v), c.cls + ": Connect's 2nd param is optional");
            clear_variant(c.mm, v);
        }
        long rcv = find_method(c, u"Receive", u"Получить");
        if (rcv >= 0) {
            check(c.le->GetNParams(rcv) == 2, c.cls + ": Receive has 2 params");
            check(c.le->FindMethod(u"Принять") == rcv, c.cls + ": FindMethod(Принять) == Receive");
        }
    } else {
        long run = find_method(c, u"Run", u"Запустить");
        if (run >= 0) check(c.le->GetNParams(run) == 5, c.cls + ": Run has 5 params");
        long rcv = find_method(c, u"Receive", u"Принять");
        if (rcv >= 0) {
            check(c.le->GetNParams(rcv) == 3, c.cls + ": Receive has 3 params");
            check(c.le->FindMethod(u"Получить") == rcv, c.cls + ": FindMethod(Получить) == Receive");
        }
    }
}

// TestEcho with one value; `fill` sets the argument, `verify` judges the result.
template <typename Fill, typename Verify>
static void echo_case(Ctx& c, long idx, const std::string& what, Fill fill, Verify verify) {
    size_t before = c.mm.outstanding();
    std::vector<tVariant> params(1);
    std::memset(params.data(), 0, sizeof(tVariant));
    fill(params[0]);
    tVariant ret;
    std::memset(&ret, 0, sizeof ret);
    bool ok = c.le->CallAsFunc(idx, &ret, params.data(), 1);
    check(ok && verify(ret), c.cls + ": TestEcho(" + what + ") returns it unchanged");
    clear_variant(c.mm, ret);
    clear_variant(c.mm, params[0]);
    check(c.mm.outstanding() == before, c.cls + ": TestEcho(" + what + ") leaves no allocation behind");
}

// The test-only members (library built with the `test-hooks` feature).
static void test_hooks(Ctx& c) {
    long echo = find_method(c, u"TestEcho", u"ТестЭхо");
    if (echo >= 0) {
        check(c.le->GetNParams(echo) == 1 && c.le->HasRetVal(echo), c.cls + ": TestEcho has 1 param and returns");
        const std::u16string hello = u"Привет, мир";
        echo_case(
            c, echo, "PWSTR", [&](tVariant& v) { set_wstr(c.mm, v, hello); },
            [&](const tVariant& r) { return r.vt == VTYPE_PWSTR && r.wstrLen == hello.size() && variant_text(r) == hello; });
        echo_case(
            c, echo, "I4 42",
            [](tVariant& v) {
                v.lVal = 42;
                v.vt = VTYPE_I4;
            },
            [](const tVariant& r) { return r.vt == VTYPE_I4 && r.lVal == 42; });
        echo_case(
            c, echo, "R8 2.5",
            [](tVariant& v) {
                v.dblVal = 2.5;
                v.vt = VTYPE_R8;
            },
            [](const tVariant& r) { return r.vt == VTYPE_R8 && r.dblVal == 2.5; });
        echo_case(
            c, echo, "BOOL true",
            [](tVariant& v) {
                v.bVal = true;
                v.vt = VTYPE_BOOL;
            },
            [](const tVariant& r) { return r.vt == VTYPE_BOOL && r.bVal; });
        echo_case(
            c, echo, "BLOB {1,2,3}",
            [&](tVariant& v) {
                void* p = nullptr;
                c.mm.AllocMemory(&p, 3);
                const char bytes[3] = {1, 2, 3};
                std::memcpy(p, bytes, 3);
                v.pstrVal = static_cast<char*>(p);
                v.strLen = 3;
                v.vt = VTYPE_BLOB;
            },
            [](const tVariant& r) {
                return r.vt == VTYPE_BLOB && r.strLen == 3 && r.pstrVal && r.pstrVal[0] == 1 && r.pstrVal[1] == 2 &&
                       r.pstrVal[2] == 3;
            });
        echo_case(
            c, echo, "EMPTY", [](tVariant& v) { v.vt = VTYPE_EMPTY; },
            [](const tVariant& r) { return r.vt == VTYPE_EMPTY; });
    }

    long out = find_method(c, u"TestOut", u"ТестВыход");
    if (out >= 0) {
        check(c.le->GetNParams(out) == 2 && !c.le->HasRetVal(out), c.cls + ": TestOut has 2 params, no return value");

        // By-ref parameter holding a string: the add-in must free it and write a new one.
        size_t base = c.mm.outstanding();
        std::vector<tVariant> params(2);
        set_wstr(c.mm, params[0], u"выход");
        set_wstr(c.mm, params[1], u"old value");
        void* old_buf = params[1].pwstrVal;
        size_t with_args = c.mm.outstanding();
        c.mm.mark();
        bool ok = c.le->CallAsProc(out, params.data(), 2);
        check(ok && params[1].vt == VTYPE_PWSTR && params[1].wstrLen == 5 && variant_text(params[1]) == u"выход",
              c.cls + ": TestOut writes \"выход\" over a PWSTR by-ref param");
        std::vector<void*> freed = c.mm.freed_since_mark();
        check(freed.size() == 1 && freed[0] == old_buf, c.cls + ": TestOut freed the old PWSTR buffer (and nothing else)");
        check(c.mm.outstanding() == with_args, c.cls + ": TestOut allocation count balanced");
        clear_variant(c.mm, params[0]);
        clear_variant(c.mm, params[1]);
        check(c.mm.outstanding() == base, c.cls + ": TestOut leaves no allocation behind (PWSTR case)");

        // By-ref parameter holding a number: nothing may be freed.
        base = c.mm.outstanding();
        set_wstr(c.mm, params[0], u"выход");
        params[1].lVal = 7;
        params[1].vt = VTYPE_I4;
        size_t unknown = c.mm.unknown_frees();
        c.mm.mark();
        ok = c.le->CallAsProc(out, params.data(), 2);
        check(ok && params[1].vt == VTYPE_PWSTR && variant_text(params[1]) == u"выход",
              c.cls + ": TestOut writes \"выход\" over an I4 by-ref param");
        check(c.mm.freed_since_mark().empty() && c.mm.unknown_frees() == unknown,
              c.cls + ": TestOut freed nothing when the by-ref param was I4");
        clear_variant(c.mm, params[0]);
        clear_variant(c.mm, params[1]);
        check(c.mm.outstanding() == base, c.cls + ": TestOut leaves no allocation behind (I4 case)");
    }

    long num = find_method(c, u"TestNumber", u"ТестЧисло");
    if (num >= 0) {
        check(c.le->GetNParams(num) == 1 && c.le->HasRetVal(num), c.cls + ": TestNumber has 1 param and returns");
        std::vector<tVariant> params(1);
        tVariant ret;
        double d = 0;

        std::memset(params.data(), 0, sizeof(tVariant));
        params[0].lVal = 21;
        params[0].vt = VTYPE_I4;
        bool ok = call_method(c, num, params, ret);
        check(ok && variant_number(ret, d) && d == 42.0, c.cls + ": TestNumber(I4 21) = 42");
        clear_variant(c.mm, ret);

        std::memset(params.data(), 0, sizeof(tVariant));
        params[0].dblVal = 2.5;
        params[0].vt = VTYPE_R8;
        ok = call_method(c, num, params, ret);
        check(ok && variant_number(ret, d) && d == 5.0, c.cls + ": TestNumber(R8 2.5) = 5");
        clear_variant(c.mm, ret);

        size_t errors = c.conn.error_count();
        set_wstr(c.mm, params[0], u"abc");
        ok = call_method(c, num, params, ret);
        check(!ok, c.cls + ": TestNumber(\"abc\") returns false");
        check(c.conn.error_count() > errors && !c.conn.last_error().empty(),
              c.cls + ": TestNumber(\"abc\") reported AddError: " + utf8(c.conn.last_error()));
        clear_variant(c.mm, ret);
        clear_variant(c.mm, params[0]);
    }

    long pan = find_method(c, u"TestPanic", u"ТестПаника");
    if (pan >= 0) {
        check(c.le->GetNParams(pan) == 0, c.cls + ": TestPanic has 0 params");
        size_t errors = c.conn.error_count();
        std::vector<tVariant> none;
        tVariant ret;
        bool ok = call_method(c, pan, none, ret);
        clear_variant(c.mm, ret);
        check(!ok, c.cls + ": TestPanic returns false (process still alive)");
        check(c.conn.error_count() > errors && !c.conn.last_error().empty(),
              c.cls + ": TestPanic reported AddError: " + utf8(c.conn.last_error()));
        long ed = c.le->FindMethod(u"ErrorDescription");
        if (ed >= 0) {
            std::memset(&ret, 0, sizeof ret);
            ok = c.le->CallAsFunc(ed, &ret, nullptr, 0);
            check(ok && ret.vt == VTYPE_PWSTR && ret.wstrLen > 0,
                  c.cls + ": ErrorDescription after the panic: " + utf8(variant_text(ret)));
            clear_variant(c.mm, ret);
        }
    }

    long pprop = c.le->FindProp(u"ТестПаникаСвойство");
    if (pprop >= 0) {
        size_t errors = c.conn.error_count();
        tVariant v;
        std::memset(&v, 0, sizeof v);
        bool ok = c.le->GetPropVal(pprop, &v);
        clear_variant(c.mm, v);
        check(!ok && c.conn.error_count() > errors,
              c.cls + ": a panic in a property getter gives false + AddError");
    }
}

// Full life of one object of class `cls`.
static void run_object(const Exports& ex, const std::u16string& cls, CountingMemory& mm, Connection& conn) {
    const std::string name = utf8(cls);
    IComponentBase* comp = nullptr;
    long got = ex.get_class_object(cls.c_str(), &comp);
    if (!check(got != 0 && comp != nullptr, name + ": GetClassObject succeeds")) return;

    // The compiler's idea of the four sub-objects (ABI.md §3.4).
    const char* base = reinterpret_cast<const char*>(comp);
    check(reinterpret_cast<const char*>(static_cast<ILanguageExtenderBase*>(comp)) == base + sizeof(void*) &&
              reinterpret_cast<const char*>(static_cast<LocaleBase*>(comp)) == base + 2 * sizeof(void*) &&
              reinterpret_cast<const char*>(static_cast<UserLanguageBase*>(comp)) == base + 3 * sizeof(void*),
          name + ": sub-objects at +1/+2/+3 pointers");

    // OneScript's order: memory manager first, then the connection.
    check(comp->setMemManager(static_cast<void*>(static_cast<IMemoryManager*>(&mm))), name + ": setMemManager");
    check(comp->Init(static_cast<void*>(static_cast<IAddInDefBase*>(&conn))), name + ": Init");
    long info = comp->GetInfo();
    check(info == 2000, name + ": GetInfo = " + std::to_string(info));

    ILanguageExtenderBase* le = comp;
    WCHAR_T* reg = nullptr;
    bool ok = le->RegisterExtensionAs(&reg);
    check(ok && from_wz(reg) == cls, name + ": RegisterExtensionAs = " + utf8(from_wz(reg)));
    mm.free_str(reg);

    static_cast<LocaleBase*>(comp)->SetLocale(u"ru_RU");
    static_cast<UserLanguageBase*>(comp)->SetUserInterfaceLanguageCode(u"ru");
    check(conn.depth_set() && conn.depth() > 1,
          name + ": SetEventBufferDepth called during Init (depth " + std::to_string(conn.depth()) + ")");

    Ctx c{name, le, mm, conn};
    discovery(c);
    required_members(c, cls == u"Client");
    test_hooks(c);

    comp->Done();
    conn.mark_done();
    long rc = ex.destroy_object(&comp);
    check(rc == 0 && comp == nullptr, name + ": DestroyObject returns 0 and nulls the pointer");
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <path-to-libwebsocket1c.so>\n", argv[0]);
        return 2;
    }
    // Never dlclose'd: the platform does not unload add-ins either (ABI.md §5.1).
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
        std::printf("cpp host: 0 passed, 1 failed\n");
        return 1;
    }
    Exports ex;
    ex.get_class_names = reinterpret_cast<GetClassNamesFn>(dlsym(lib, "GetClassNames"));
    ex.get_class_object = reinterpret_cast<GetClassObjectFn>(dlsym(lib, "GetClassObject"));
    ex.destroy_object = reinterpret_cast<DestroyObjectFn>(dlsym(lib, "DestroyObject"));
    ex.set_platform_capabilities = reinterpret_cast<SetPlatformCapabilitiesFn>(dlsym(lib, "SetPlatformCapabilities"));
    ex.get_attach_type = reinterpret_cast<GetAttachTypeFn>(dlsym(lib, "GetAttachType"));
    bool all = check(ex.get_class_names && ex.get_class_object && ex.destroy_object && ex.set_platform_capabilities &&
                         ex.get_attach_type,
                     "all five exports present");

    {
        CountingMemory mm;
        std::vector<std::unique_ptr<Connection>> conns;  // kept alive to the end: late calls stay safe
        if (all) {
            std::u16string names = from_wz(ex.get_class_names());
            check(names == u"Client|Server|SocketIO", "GetClassNames = " + utf8(names));
            AppCapabilities caps = ex.set_platform_capabilities(eAppCapabilities3);
            check(caps == eAppCapabilities3, "SetPlatformCapabilities(3) = " + std::to_string(caps));
            AttachType at = ex.get_attach_type();
            check(at == eCanAttachAny, "GetAttachType = " + std::to_string(at));

            IComponentBase* none = nullptr;
            check(ex.get_class_object(u"NoSuchClass", &none) == 0 && none == nullptr,
                  "GetClassObject(unknown name) fails");
            check(ex.destroy_object(&none) != 0, "DestroyObject(null) returns non-zero");

            for (const std::u16string cls : {u"Client", u"Server"}) {
                conns.push_back(std::make_unique<Connection>());
                run_object(ex, cls, mm, *conns.back());
            }

            // Give any stray background thread a moment to misbehave before counting.
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            size_t late = 0;
            for (auto& c : conns) late += c->calls_after_done();
            check(mm.outstanding() == 0, "memory manager: " + std::to_string(mm.outstanding()) + " outstanding");
            check(mm.unknown_frees() == 0, "memory manager: " + std::to_string(mm.unknown_frees()) + " unknown frees");
            check(late == 0, "connection: " + std::to_string(late) + " calls after Done");
        }
    }

    std::printf("cpp host: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
