//! The VST3 bundle in a minimal VST3 host: parameter changes from a thread other than the
//! one that created the instance, then the instance destroyed, many times over, with a
//! second instance alive throughout so the wrapper's shared background thread outlives each.
//!
//! nice-plug posts a GUI-update task to its shared background thread for every such change.
//! Unpatched (0.4.2), the thread ends when it picks up a task whose instance is gone, and the
//! next teardown panics inside a VST3 `release` — which aborts the host (pluginval found it).
//! The patch in `vendor/nice-plug` drops such a task instead; this test aborts without it.
//!
//! Needs the bundle: `cargo xtask bundle dgg_restore --release`.

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr::null_mut;

use vst3::Steinberg::Vst::{IComponent, IEditController, IEditControllerTrait, ParameterInfo};
use vst3::Steinberg::{kResultOk, IPluginBaseTrait, IPluginFactory, IPluginFactoryTrait, PClassInfo};
use vst3::{ComPtr, Interface};

fn library_path() -> PathBuf {
    let so = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bundled/DGG Restore.vst3/Contents/x86_64-linux/DGG Restore.so");
    assert!(so.is_file(), "{} is missing: cargo xtask bundle dgg_restore --release", so.display());
    so
}

/// The loaded module and its factory.
struct Module {
    factory: ComPtr<IPluginFactory>,
    _library: libloading::Library,
}

impl Module {
    fn load() -> Self {
        unsafe {
            let library = libloading::Library::new(library_path()).expect("the VST3 module loads");
            let entry: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> bool> = library.get(b"ModuleEntry").expect("ModuleEntry");
            assert!(entry(null_mut()), "ModuleEntry failed");
            let get: libloading::Symbol<unsafe extern "system" fn() -> *mut c_void> = library.get(b"GetPluginFactory").expect("GetPluginFactory");
            let factory = ComPtr::from_raw(get() as *mut IPluginFactory).expect("a factory");
            Self { factory, _library: library }
        }
    }

    /// A new, initialised instance of the module's first class, as its edit controller.
    fn instantiate(&self) -> ComPtr<IEditController> {
        unsafe {
            let mut info: PClassInfo = std::mem::zeroed();
            assert_eq!(self.factory.getClassInfo(0, &mut info), kResultOk);
            let mut obj = null_mut();
            let iid = IComponent::IID;
            assert_eq!(self.factory.createInstance(info.cid.as_ptr(), iid.as_ptr() as _, &mut obj), kResultOk);
            let component = ComPtr::from_raw(obj as *mut IComponent).expect("an instance");
            assert_eq!(component.initialize(null_mut()), kResultOk);
            component.cast::<IEditController>().expect("the component is its own edit controller")
        }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        unsafe {
            if let Ok(exit) = self._library.get::<unsafe extern "C" fn() -> bool>(b"ModuleExit") {
                exit();
            }
        }
    }
}

/// Sends `changes` alternating values of the first parameter from another thread.
fn automate_from_another_thread(controller: &ComPtr<IEditController>, changes: usize) {
    let raw = controller.as_ptr() as usize;
    std::thread::spawn(move || unsafe {
        // The instance outlives this thread: it is joined before the instance is released.
        let controller = vst3::ComRef::from_raw(raw as *mut IEditController).expect("non-null");
        let mut info: ParameterInfo = std::mem::zeroed();
        assert_eq!(controller.getParameterInfo(0, &mut info), kResultOk);
        for i in 0..changes {
            controller.setParamNormalized(info.id, if i % 2 == 0 { 0.25 } else { 0.75 });
        }
    })
    .join()
    .expect("the automation thread");
}

#[test]
fn destroying_instances_right_after_automation_from_another_thread_does_not_crash() {
    let module = Module::load();
    let keeper = module.instantiate();
    for _ in 0..200 {
        let instance = module.instantiate();
        automate_from_another_thread(&instance, 200);
        unsafe { instance.terminate() };
        drop(instance);
    }
    automate_from_another_thread(&keeper, 10);
    unsafe { keeper.terminate() };
    drop(keeper);
    // A fresh instance after the last one is gone starts a fresh background thread.
    let again = module.instantiate();
    automate_from_another_thread(&again, 10);
    drop(again);
}
