// ws1c_native_api.h — C++ declarations of the 1C:Enterprise Native API (add-in ABI).
//
// Written for this project from its own ABI reference (shared/ABI.md: §1 basic types,
// §2 tVariant, §3 interfaces and slot order, §4 exported functions). It is not a copy of
// the 1C SDK headers. Used by the C++ smoke-test host (tests/cpp/host.cpp) so that the C++
// compiler, not the project, decides vtable slots and sub-object offsets.
//
// Rules kept here (see ABI.md): every interface method uses ADDIN_API; interfaces with a
// virtual destructor declare it first (2 slots on Itanium, 1 on MSVC); IMsgBox,
// IPlatformInfo and IAttachedInfo derive from the empty non-polymorphic IInterface and
// have no destructor; strings are 16-bit UTF-16 units (WCHAR_T); `long` is 8 bytes on
// Linux x86_64 and 4 bytes on Windows.
#ifndef WS1C_NATIVE_API_H
#define WS1C_NATIVE_API_H

#include <cstddef>
#include <cstdint>
#include <ctime>

// Calling convention of every interface method: __stdcall on Windows, default elsewhere.
#ifndef ADDIN_API
#if defined(_WIN32)
#define ADDIN_API __stdcall
#else
#define ADDIN_API
#endif
#endif

// Lets GCC/Clang accept the anonymous structs inside tVariant even under -pedantic.
#if defined(__GNUC__)
#define WS1C_ANON_STRUCT __extension__ struct
#else
#define WS1C_ANON_STRUCT struct
#endif

// One UTF-16 code unit; strings crossing the boundary are arrays of these.
typedef char16_t WCHAR_T;

// Type tag stored in tVariant::vt.
typedef uint16_t TYPEVAR;

// 16-byte interface identifier (same layout as a Windows GUID); only used inside tVariant.
struct Ws1cIid {
    uint32_t Data1;    // first 4 bytes
    uint16_t Data2;    // next 2 bytes
    uint16_t Data3;    // next 2 bytes
    uint8_t Data4[8];  // last 8 bytes
};

// ---------------------------------------------------------------------------------------
// tVariant type tags (ABI.md §2.2)
// ---------------------------------------------------------------------------------------
constexpr TYPEVAR VTYPE_EMPTY = 0;         // no value (1C Undefined)
constexpr TYPEVAR VTYPE_NULL = 1;          // 1C Null
constexpr TYPEVAR VTYPE_I2 = 2;            // int16 in shortVal
constexpr TYPEVAR VTYPE_I4 = 3;            // int32 in lVal
constexpr TYPEVAR VTYPE_R4 = 4;            // float in fltVal
constexpr TYPEVAR VTYPE_R8 = 5;            // double in dblVal
constexpr TYPEVAR VTYPE_DATE = 6;          // OLE automation date (double) in date
constexpr TYPEVAR VTYPE_TM = 7;            // struct tm in tmVal
constexpr TYPEVAR VTYPE_PSTR = 8;          // 8-bit string: pstrVal + strLen bytes
constexpr TYPEVAR VTYPE_INTERFACE = 9;     // interface pointer (unsupported by the platform)
constexpr TYPEVAR VTYPE_ERROR = 10;        // error code in errCode
constexpr TYPEVAR VTYPE_BOOL = 11;         // bool in bVal
constexpr TYPEVAR VTYPE_VARIANT = 12;      // pointer to another tVariant (unsupported)
constexpr TYPEVAR VTYPE_I1 = 13;           // int8 in i8Val
constexpr TYPEVAR VTYPE_UI1 = 14;          // uint8 in ui8Val
constexpr TYPEVAR VTYPE_UI2 = 15;          // uint16 in ushortVal
constexpr TYPEVAR VTYPE_UI4 = 16;          // uint32 in ulVal
constexpr TYPEVAR VTYPE_I8 = 17;           // int64 in llVal
constexpr TYPEVAR VTYPE_UI8 = 18;          // uint64 in ullVal
constexpr TYPEVAR VTYPE_INT = 19;          // int in intVal
constexpr TYPEVAR VTYPE_UINT = 20;         // unsigned in uintVal
constexpr TYPEVAR VTYPE_HRESULT = 21;      // long in hRes
constexpr TYPEVAR VTYPE_PWSTR = 22;        // UTF-16 string: pwstrVal + wstrLen units (no NUL)
constexpr TYPEVAR VTYPE_BLOB = 23;         // binary data: pstrVal + strLen bytes
constexpr TYPEVAR VTYPE_CLSID = 24;        // 16-byte id in IDVal
constexpr TYPEVAR VTYPE_VECTOR = 0x1000;   // flag: vector (unsupported by the platform)
constexpr TYPEVAR VTYPE_ARRAY = 0x2000;    // flag: array (unsupported by the platform)
constexpr TYPEVAR VTYPE_BYREF = 0x4000;    // flag: by reference (unsupported by the platform)
constexpr TYPEVAR VTYPE_TYPEMASK = 0x0fff; // mask selecting the base tag

// ---------------------------------------------------------------------------------------
// tVariant (ABI.md §2.1): payload union, then cbElements, then the tag.
// ---------------------------------------------------------------------------------------
struct tVariant {
    union {
        int8_t i8Val;             // VTYPE_I1
        int16_t shortVal;         // VTYPE_I2
        int32_t lVal;             // VTYPE_I4
        int intVal;               // VTYPE_INT
        unsigned int uintVal;     // VTYPE_UINT
        int64_t llVal;            // VTYPE_I8
        uint8_t ui8Val;           // VTYPE_UI1
        uint16_t ushortVal;       // VTYPE_UI2
        uint32_t ulVal;           // VTYPE_UI4
        uint64_t ullVal;          // VTYPE_UI8
        int32_t errCode;          // VTYPE_ERROR
        long hRes;                // VTYPE_HRESULT
        float fltVal;             // VTYPE_R4
        double dblVal;            // VTYPE_R8
        bool bVal;                // VTYPE_BOOL
        char chVal;               // a single 8-bit character
        wchar_t wchVal;           // a single platform wchar_t (not used for strings)
        double date;              // VTYPE_DATE
        Ws1cIid IDVal;            // VTYPE_CLSID
        tVariant* pvarVal;        // VTYPE_VARIANT
        struct tm tmVal;          // VTYPE_TM (year-1900, month 0..11)
        WS1C_ANON_STRUCT {        // VTYPE_INTERFACE
            void* pInterfaceVal;  // the interface pointer
            Ws1cIid InterfaceID;  // its identifier
        };
        WS1C_ANON_STRUCT {        // VTYPE_PSTR and VTYPE_BLOB
            char* pstrVal;        // bytes, allocated with IMemoryManager when returned
            uint32_t strLen;      // byte count
        };
        WS1C_ANON_STRUCT {        // VTYPE_PWSTR
            WCHAR_T* pwstrVal;    // UTF-16 units, allocated with IMemoryManager when returned
            uint32_t wstrLen;     // unit count without the terminating NUL
        };
    };
    uint32_t cbElements;  // element count for vectors/arrays (unused by the platform)
    TYPEVAR vt;           // type tag: one of VTYPE_*
};

// Layout checks against ABI.md §2.1.
#if defined(__x86_64__) && !defined(_WIN32)
static_assert(sizeof(tVariant) == 64, "tVariant must be 64 bytes on Linux x86_64");
static_assert(offsetof(tVariant, vt) == 60, "tVariant::vt must be at offset 60 on Linux x86_64");
static_assert(offsetof(tVariant, wstrLen) == 8, "tVariant::wstrLen must be at offset 8 on Linux x86_64");
static_assert(offsetof(tVariant, strLen) == 8, "tVariant::strLen must be at offset 8 on Linux x86_64");
static_assert(offsetof(tVariant, cbElements) == 56, "tVariant::cbElements must be at offset 56 on Linux x86_64");
#elif defined(_WIN64)
static_assert(sizeof(tVariant) == 48, "tVariant must be 48 bytes on Windows x64");
static_assert(offsetof(tVariant, vt) == 44, "tVariant::vt must be at offset 44 on Windows x64");
static_assert(offsetof(tVariant, wstrLen) == 8, "tVariant::wstrLen must be at offset 8 on Windows x64");
static_assert(offsetof(tVariant, cbElements) == 40, "tVariant::cbElements must be at offset 40 on Windows x64");
#elif defined(_WIN32)
static_assert(sizeof(tVariant) == 48, "tVariant must be 48 bytes on Windows x86");
static_assert(offsetof(tVariant, vt) == 44, "tVariant::vt must be at offset 44 on Windows x86");
static_assert(offsetof(tVariant, wstrLen) == 4, "tVariant::wstrLen must be at offset 4 on Windows x86");
static_assert(offsetof(tVariant, cbElements) == 40, "tVariant::cbElements must be at offset 40 on Windows x86");
#elif defined(__linux__) && defined(__i386__)
static_assert(sizeof(tVariant) == 52, "tVariant must be 52 bytes on Linux i386");
static_assert(offsetof(tVariant, vt) == 48, "tVariant::vt must be at offset 48 on Linux i386");
static_assert(offsetof(tVariant, wstrLen) == 4, "tVariant::wstrLen must be at offset 4 on Linux i386");
static_assert(offsetof(tVariant, cbElements) == 44, "tVariant::cbElements must be at offset 44 on Linux i386");
#endif
static_assert(sizeof(WCHAR_T) == 2, "WCHAR_T must be a 16-bit UTF-16 unit");

// ---------------------------------------------------------------------------------------
// Enumerations (ABI.md §3.3, §4)
// ---------------------------------------------------------------------------------------

// Capability level negotiated through SetPlatformCapabilities.
enum AppCapabilities {
    eAppCapabilitiesInvalid = -1,              // component does not support the level
    eAppCapabilities1 = 1,                     // IMsgBox / IPlatformInfo available
    eAppCapabilities2 = 2,                     // level 2
    eAppCapabilities3 = 3,                     // level 3 (UserLanguageBase, GetAttachType era)
    eAppCapabilitiesLast = eAppCapabilities3,  // highest known level
};

// How the component may be attached (returned by GetAttachType).
enum AttachType {
    eCanAttachNotIsolated = 1,  // only inside the platform process
    eCanAttachIsolated = 2,     // only in a separate host process
    eCanAttachAny = 3,          // either
};

// How the component actually was attached (IAttachedInfo).
enum AttachedType {
    eAttachedIsolated = 0,     // runs in a separate host process
    eAttachedNotIsolated = 1,  // runs inside the platform process
};

// Which platform interface IAddInDefBaseEx::GetInterface should return.
enum Interfaces {
    eIMsgBox = 0,                  // IMsgBox
    eIPlatformInfo = 1,            // IPlatformInfo
#if defined(__ANDROID__)
    eIAndroidComponentHelper = 2,  // Android-only helper interface
    eIAttachedInfo = 3,            // IAttachedInfo (Android numbering)
#else
    eIAttachedInfo = 2,            // IAttachedInfo
#endif
};

// Kind of 1C application hosting the component (AppInfo::Application).
enum AppType {
    eAppUnknown = -1,       // unknown
    eAppThinClient = 0,     // thin client
    eAppThickClient = 1,    // thick client
    eAppWebClient = 2,      // web client
    eAppServer = 3,         // 1C:Enterprise server
    eAppExtConn = 4,        // external (COM) connection
    eAppMobileClient = 5,   // mobile client
    eAppMobileServer = 6,   // mobile server
};

static_assert(sizeof(AppCapabilities) == 4 && sizeof(AttachType) == 4 && sizeof(Interfaces) == 4 &&
                  sizeof(AppType) == 4 && sizeof(AttachedType) == 4,
              "Native API enums are 4 bytes");

// AddError message codes (wcode); 1000..2000 are reserved by the platform.
constexpr unsigned short ADDIN_E_NONE = 1000;              // no icon
constexpr unsigned short ADDIN_E_ORDINARY = 1001;          // ordinary message
constexpr unsigned short ADDIN_E_ATTENTION = 1002;         // attention
constexpr unsigned short ADDIN_E_IMPORTANT = 1003;         // important
constexpr unsigned short ADDIN_E_VERY_IMPORTANT = 1004;    // very important
constexpr unsigned short ADDIN_E_INFO = 1005;              // information
constexpr unsigned short ADDIN_E_FAIL = 1006;              // error (message window)
constexpr unsigned short ADDIN_E_MSGBOX_ATTENTION = 1007;  // modal dialog: attention
constexpr unsigned short ADDIN_E_MSGBOX_INFO = 1008;       // modal dialog: information
constexpr unsigned short ADDIN_E_MSGBOX_FAIL = 1009;       // modal dialog: error

// ---------------------------------------------------------------------------------------
// Platform-side interfaces (ABI.md §3.3)
// ---------------------------------------------------------------------------------------

// Empty, non-polymorphic base of IMsgBox / IPlatformInfo / IAttachedInfo.
class IInterface {};

// Message boxes (client only); no destructor, methods start at slot 0.
class IMsgBox : public IInterface {
public:
    // Yes/no question; the answer is written into *answer as VTYPE_BOOL.
    virtual bool ADDIN_API Confirm(const WCHAR_T* question, tVariant* answer) = 0;
    // Informational message box.
    virtual bool ADDIN_API Alert(const WCHAR_T* text) = 0;
};

// Description of the running platform returned by IPlatformInfo.
struct AppInfo {
    const WCHAR_T* AppVersion;            // platform version, e.g. u"8.3.25.1000"
    const WCHAR_T* UserAgentInformation;  // user agent (web client) or other info
    AppType Application;                  // which kind of application this is
};
#if defined(__x86_64__) && !defined(_WIN32)
static_assert(sizeof(AppInfo) == 24, "AppInfo must be 24 bytes on Linux x86_64");
#endif

// Platform information; no destructor, method at slot 0.
class IPlatformInfo : public IInterface {
public:
    // Information about the platform; owned by the platform.
    virtual const AppInfo* ADDIN_API GetPlatformInfo() = 0;
};

// Attachment mode information; no destructor, method at slot 0.
class IAttachedInfo : public IInterface {
public:
    // Whether the component runs isolated or inside the platform process.
    virtual AttachedType ADDIN_API GetAttachedInfo() = 0;
};

// Platform allocator for every buffer handed to the platform.
class IMemoryManager {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC.
    virtual ~IMemoryManager() {}
    // Allocate `bytes` bytes into *block; false on failure.
    virtual bool ADDIN_API AllocMemory(void** block, unsigned long bytes) = 0;
    // Free *block (allocated by AllocMemory).
    virtual void ADDIN_API FreeMemory(void** block) = 0;
};

// Connection object passed to IInitDoneBase::Init.
class IAddInDefBase {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC.
    virtual ~IAddInDefBase() {}
    // Report an error/message; non-zero scode raises an exception in 1C code.
    virtual bool ADDIN_API AddError(unsigned short wcode, const WCHAR_T* source, const WCHAR_T* descr,
                                    long scode) = 0;
    // Read a value from profile storage; errText is freed by the component with FreeMemory.
    virtual bool ADDIN_API Read(WCHAR_T* name, tVariant* val, long* errCode, WCHAR_T** errText) = 0;
    // Write a value into profile storage (not on the server).
    virtual bool ADDIN_API Write(WCHAR_T* name, tVariant* val) = 0;
    // Register the profile name used by Read/Write.
    virtual bool ADDIN_API RegisterProfileAs(WCHAR_T* profile) = 0;
    // Set the depth of the external-event queue.
    virtual bool ADDIN_API SetEventBufferDepth(long depth) = 0;
    // Current depth of the external-event queue.
    virtual long ADDIN_API GetEventBufferDepth() = 0;
    // Queue an external event (source, event name, data) for 1C code; strings are copied.
    virtual bool ADDIN_API ExternalEvent(WCHAR_T* source, WCHAR_T* message, WCHAR_T* data) = 0;
    // Drop all queued external events.
    virtual void ADDIN_API CleanEventBuffer() = 0;
    // Show text in the status line (client only).
    virtual bool ADDIN_API SetStatusLine(WCHAR_T* text) = 0;
    // Clear the status line.
    virtual void ADDIN_API ResetStatusLine() = 0;
};

// Extended connection: adds access to IMsgBox / IPlatformInfo / IAttachedInfo.
class IAddInDefBaseEx : public IAddInDefBase {
public:
    // Virtual destructor (shares the base's slots).
    virtual ~IAddInDefBaseEx() {}
    // Return the requested platform interface, or null.
    virtual IInterface* ADDIN_API GetInterface(Interfaces which) = 0;
};

// ---------------------------------------------------------------------------------------
// Component-side interfaces (ABI.md §3.2)
// ---------------------------------------------------------------------------------------

// Initialisation and shutdown.
class IInitDoneBase {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC (never called across the boundary).
    virtual ~IInitDoneBase() {}
    // Receive the connection (an IAddInDefBase*, in practice IAddInDefBaseEx*).
    virtual bool ADDIN_API Init(void* connection) = 0;
    // Receive the platform memory manager (an IMemoryManager*).
    virtual bool ADDIN_API setMemManager(void* memoryManager) = 0;
    // Component version x1000 (2000).
    virtual long ADDIN_API GetInfo() = 0;
    // End of life: stop using the connection and memory manager.
    virtual void ADDIN_API Done() = 0;
};

// Properties and methods visible to 1C code.
class ILanguageExtenderBase {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC (never called across the boundary).
    virtual ~ILanguageExtenderBase() {}
    // Write the object name (AllocMemory, NUL-terminated) into *name.
    virtual bool ADDIN_API RegisterExtensionAs(WCHAR_T** name) = 0;
    // Number of properties.
    virtual long ADDIN_API GetNProps() = 0;
    // Index of the property with this name, or -1.
    virtual long ADDIN_API FindProp(const WCHAR_T* name) = 0;
    // Property name (alias 0 English, 1 local), allocated with AllocMemory, or null.
    virtual const WCHAR_T* ADDIN_API GetPropName(long idx, long alias) = 0;
    // Read a property into *out.
    virtual bool ADDIN_API GetPropVal(const long idx, tVariant* out) = 0;
    // Write a property from *in (owned by the platform).
    virtual bool ADDIN_API SetPropVal(const long idx, tVariant* in) = 0;
    // Whether the property can be read.
    virtual bool ADDIN_API IsPropReadable(const long idx) = 0;
    // Whether the property can be written.
    virtual bool ADDIN_API IsPropWritable(const long idx) = 0;
    // Number of methods.
    virtual long ADDIN_API GetNMethods() = 0;
    // Index of the method with this name, or -1.
    virtual long ADDIN_API FindMethod(const WCHAR_T* name) = 0;
    // Method name (alias 0 English, 1 local), allocated with AllocMemory, or null.
    virtual const WCHAR_T* ADDIN_API GetMethodName(const long idx, const long alias) = 0;
    // Number of parameters of a method.
    virtual long ADDIN_API GetNParams(const long idx) = 0;
    // Default value of an omitted parameter; false if the parameter is mandatory.
    virtual bool ADDIN_API GetParamDefValue(const long method, const long param, tVariant* out) = 0;
    // Whether the method returns a value (is a function).
    virtual bool ADDIN_API HasRetVal(const long idx) = 0;
    // Call a method as a procedure; params are by reference.
    virtual bool ADDIN_API CallAsProc(const long idx, tVariant* params, const long count) = 0;
    // Call a method as a function, writing its result into *result.
    virtual bool ADDIN_API CallAsFunc(const long idx, tVariant* result, tVariant* params, const long count) = 0;
};

// Receives the platform locale.
class LocaleBase {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC (never called across the boundary).
    virtual ~LocaleBase() {}
    // Locale name, e.g. u"ru_RU".
    virtual void ADDIN_API SetLocale(const WCHAR_T* locale) = 0;
};

// Receives the user interface language.
class UserLanguageBase {
public:
    // Virtual destructor: 2 slots on Itanium, 1 on MSVC (never called across the boundary).
    virtual ~UserLanguageBase() {}
    // Language code, e.g. u"ru".
    virtual void ADDIN_API SetUserInterfaceLanguageCode(const WCHAR_T* lang) = 0;
};

// The object 1C holds: four sub-objects (four vptrs) in this order, nothing else.
class IComponentBase : public IInitDoneBase,
                       public ILanguageExtenderBase,
                       public LocaleBase,
                       public UserLanguageBase {
public:
    // Virtual destructor (never called across the boundary; use DestroyObject).
    virtual ~IComponentBase() {}
};
static_assert(sizeof(IComponentBase) == 4 * sizeof(void*), "IComponentBase is exactly four vptrs");

// ---------------------------------------------------------------------------------------
// Exported functions of the add-in library (ABI.md §4): extern "C", default convention.
// ---------------------------------------------------------------------------------------
extern "C" {
// const WCHAR_T* GetClassNames(): static '|'-separated class list, owned by the library.
typedef const WCHAR_T* (*GetClassNamesFn)();
// long GetClassObject(name, &obj): non-zero on success, *obj receives the new object.
typedef long (*GetClassObjectFn)(const WCHAR_T* clsName, IComponentBase** obj);
// long DestroyObject(&obj): 0 on success, *obj is set to null.
typedef long (*DestroyObjectFn)(IComponentBase** obj);
// AppCapabilities SetPlatformCapabilities(caps): returns the level the library supports.
typedef AppCapabilities (*SetPlatformCapabilitiesFn)(const AppCapabilities caps);
// AttachType GetAttachType(): isolated / not isolated / any.
typedef AttachType (*GetAttachTypeFn)();
}

#endif  // WS1C_NATIVE_API_H
