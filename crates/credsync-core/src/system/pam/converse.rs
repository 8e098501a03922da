//! The conversation: how credsync answers PAM modules. The password was collected
//! before PAM starts, so the only question answered is a hidden prompt (with that
//! password); a visible prompt (a user name, a one-time code) can't be answered
//! and fails the conversation; errors and notices are shown on stderr.
//!
//! Guarantees: every answer is a `calloc`-ed, zero-padded buffer of
//! `RESPONSE_SIZE` bytes whose ownership passes to PAM; every copy of the
//! password that stays with credsync is wiped before it is freed, on every path
//! (failure half-way, panic); no panic crosses `extern "C"`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use zeroize::Zeroize;

use super::sys::{
    PAM_BUF_ERR, PAM_CONV_ERR, PAM_ERROR_MSG, PAM_MAX_NUM_MSG, PAM_MAX_RESP_SIZE,
    PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SUCCESS, PAM_TEXT_INFO, pam_message, pam_response,
};

/// Size of every answer buffer: the longest answer PAM expects plus its NUL.
pub(super) const RESPONSE_SIZE: usize = PAM_MAX_RESP_SIZE + 1;

/// Why the conversation refused to go on, kept for a message in the user's terms
/// (PAM itself only reports a generic error code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ConversationFailure {
    /// A module asked a visible question; the text is the module's prompt.
    UnanswerablePrompt(String),
    PasswordTooLong,
    UnsupportedMessage(c_int),
    OutOfMemory,
}

/// What the conversation function reads through PAM's `appdata_ptr`. Only ever
/// used through `&`, from the thread that called into PAM.
pub(super) struct Conversation<'p> {
    password: &'p [u8],
    show: fn(&str),
    failure: RefCell<Option<ConversationFailure>>,
    panicked: Cell<bool>,
}

impl<'p> Conversation<'p> {
    /// `show` displays one line of a module's error or notice text.
    pub(super) fn new(password: &'p [u8], show: fn(&str)) -> Self {
        Conversation {
            password,
            show,
            failure: RefCell::new(None),
            panicked: Cell::new(false),
        }
    }

    /// The first reason the conversation failed, if it did.
    pub(super) fn failure(&self) -> Option<ConversationFailure> {
        self.failure.borrow().clone()
    }

    pub(super) fn panicked(&self) -> bool {
        self.panicked.get()
    }

    fn fail(&self, failure: ConversationFailure, code: c_int) -> c_int {
        self.failure.borrow_mut().get_or_insert(failure);
        code
    }

    /// Answers `count` messages; on success the returned array belongs to PAM.
    ///
    /// # Safety
    /// `msg` points to `count` readable pointers, each to a valid `pam_message`
    /// whose `msg` is NULL or a NUL-terminated string (Linux-PAM's layout).
    unsafe fn answer(
        &self,
        count: usize,
        msg: *const *const pam_message,
    ) -> Result<ResponseArray, c_int> {
        let mut answers = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `i < count` and the caller guarantees `count` readable pointers.
            let message = unsafe { *msg.add(i) };
            if message.is_null() {
                return Err(self.fail(ConversationFailure::UnsupportedMessage(-1), PAM_CONV_ERR));
            }
            // SAFETY: non-null, and the caller guarantees it points to a valid
            // message that PAM keeps alive and unchanged during this call.
            let message = unsafe { &*message };
            let text = if message.msg.is_null() {
                Cow::Borrowed("")
            } else {
                // SAFETY: non-null, and the caller guarantees a NUL-terminated
                // string that outlives this call.
                unsafe { CStr::from_ptr(message.msg) }.to_string_lossy()
            };
            answers.push(self.answer_one(message.msg_style, &text)?);
        }
        // If anything above failed, `answers` is dropped here: each buffer is
        // wiped and freed. From now on nothing can fail.
        let mut array = ResponseArray::new(count)
            .ok_or_else(|| self.fail(ConversationFailure::OutOfMemory, PAM_BUF_ERR))?;
        for (i, answer) in answers.into_iter().enumerate() {
            if let Some(buffer) = answer {
                array.give(i, buffer);
            }
        }
        Ok(array)
    }

    fn answer_one(&self, style: c_int, text: &str) -> Result<Option<ResponseBuffer>, c_int> {
        match style {
            PAM_PROMPT_ECHO_OFF => match ResponseBuffer::holding(self.password) {
                Ok(buffer) => Ok(Some(buffer)),
                Err(BufferError::TooLong) => {
                    Err(self.fail(ConversationFailure::PasswordTooLong, PAM_CONV_ERR))
                }
                Err(BufferError::OutOfMemory) => {
                    Err(self.fail(ConversationFailure::OutOfMemory, PAM_BUF_ERR))
                }
            },
            PAM_PROMPT_ECHO_ON => Err(self.fail(
                ConversationFailure::UnanswerablePrompt(one_line(text)),
                PAM_CONV_ERR,
            )),
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                (self.show)(&one_line(text));
                Ok(None)
            }
            other => Err(self.fail(ConversationFailure::UnsupportedMessage(other), PAM_CONV_ERR)),
        }
    }
}

/// The `pam_conv.conv` callback. `appdata_ptr` must be a `*const Conversation`.
///
/// # Safety
/// Called by PAM (or a test acting as PAM): `appdata_ptr` points to a live
/// `Conversation`, `msg` to `num_msg` pointers to valid messages, and `resp` is
/// writable.
pub(super) unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    if appdata_ptr.is_null() || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: the only `appdata_ptr` credsync hands to PAM is a
    // `&Conversation` that the PAM transaction borrows for its whole life
    // (`Transaction<'c>`), so it is live; it is only read through `&`.
    let conversation = unsafe { &*appdata_ptr.cast_const().cast::<Conversation<'_>>() };
    let count = match usize::try_from(num_msg) {
        Ok(n) if (1..=PAM_MAX_NUM_MSG).contains(&n) => n,
        _ => {
            return conversation.fail(ConversationFailure::UnsupportedMessage(-1), PAM_CONV_ERR);
        }
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: PAM passes `num_msg` pointers to valid messages in `msg`
        // (Linux-PAM layout), alive for the duration of this call.
        unsafe { conversation.answer(count, msg.cast_const()) }
    }));
    match outcome {
        Ok(Ok(array)) => {
            // SAFETY: `resp` is non-null and PAM gives us it to write the answer.
            unsafe { *resp = array.into_raw() };
            PAM_SUCCESS
        }
        Ok(Err(code)) => code,
        Err(_payload) => {
            // The payload is dropped here; if even that panicked, the
            // extern "C" boundary would abort the process: never unwind into C.
            conversation.panicked.set(true);
            PAM_CONV_ERR
        }
    }
}

/// A module's message made safe to print as one line: no control characters
/// (a module's text must not drive the terminal), no trailing newline.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.trim_end_matches(['\n', '\r']).chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Shows a module's message on stderr; a closed stderr is not worth failing for.
pub(super) fn show_on_stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[derive(Debug, PartialEq, Eq)]
enum BufferError {
    TooLong,
    OutOfMemory,
}

/// One answer: `RESPONSE_SIZE` bytes from `calloc`, so PAM can `free` it and the
/// text is NUL-terminated and zero-padded. Wiped before it is freed, unless
/// ownership went to PAM.
struct ResponseBuffer(NonNull<u8>);

impl ResponseBuffer {
    fn holding(secret: &[u8]) -> Result<Self, BufferError> {
        // A NUL inside would silently truncate the answer.
        if secret.len() > PAM_MAX_RESP_SIZE || secret.contains(&0) {
            return Err(BufferError::TooLong);
        }
        // SAFETY: plain allocation; the result is checked for NULL below.
        let raw = unsafe { libc::calloc(1, RESPONSE_SIZE) };
        let buffer =
            ResponseBuffer(NonNull::new(raw.cast::<u8>()).ok_or(BufferError::OutOfMemory)?);
        // SAFETY: the destination is a fresh allocation of RESPONSE_SIZE bytes,
        // so it can't overlap `secret`, and `secret.len() < RESPONSE_SIZE`.
        unsafe { ptr::copy_nonoverlapping(secret.as_ptr(), buffer.0.as_ptr(), secret.len()) };
        Ok(buffer)
    }

    /// Gives the memory away: whoever receives it must free it.
    fn into_raw(self) -> *mut c_char {
        let raw = self.0.as_ptr().cast();
        std::mem::forget(self);
        raw
    }
}

impl Drop for ResponseBuffer {
    fn drop(&mut self) {
        // SAFETY: we own the RESPONSE_SIZE-byte allocation from `holding`.
        unsafe { wipe_and_free(self.0.as_ptr().cast()) }
    }
}

/// Wipes a `RESPONSE_SIZE`-byte answer buffer, then frees it.
///
/// # Safety
/// `buffer` came from `ResponseBuffer::holding` and nobody else uses or frees it.
unsafe fn wipe_and_free(buffer: *mut c_char) {
    // SAFETY: the caller guarantees RESPONSE_SIZE bytes we exclusively own.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), RESPONSE_SIZE) };
    bytes.zeroize();
    // SAFETY: the memory came from `calloc` and is not used after this.
    unsafe { libc::free(buffer.cast()) };
}

/// The `calloc`-ed array of `pam_response` handed to PAM, which frees it.
/// Until then it owns the answers in it and wipes them if dropped.
struct ResponseArray {
    first: NonNull<pam_response>,
    len: usize,
}

impl ResponseArray {
    fn new(len: usize) -> Option<Self> {
        // SAFETY: plain allocation (calloc checks the multiplication for
        // overflow); zeroed memory is a valid `pam_response` (NULL, 0).
        let raw = unsafe { libc::calloc(len, size_of::<pam_response>()) };
        NonNull::new(raw.cast()).map(|first| ResponseArray { first, len })
    }

    fn give(&mut self, index: usize, buffer: ResponseBuffer) {
        assert!(index < self.len);
        // SAFETY: `index < len`, the array is ours, and its entries are
        // initialised (zeroed by calloc).
        let entry = unsafe { &mut *self.first.as_ptr().add(index) };
        debug_assert!(entry.resp.is_null());
        entry.resp = buffer.into_raw();
    }

    fn into_raw(self) -> *mut pam_response {
        let raw = self.first.as_ptr();
        std::mem::forget(self);
        raw
    }
}

impl Drop for ResponseArray {
    fn drop(&mut self) {
        for index in 0..self.len {
            // SAFETY: `index < len`; the array is ours and initialised.
            let entry = unsafe { &mut *self.first.as_ptr().add(index) };
            let resp = std::mem::replace(&mut entry.resp, ptr::null_mut());
            if !resp.is_null() {
                // SAFETY: every non-null entry came from `ResponseBuffer::into_raw`
                // in `give`, and still belongs to this array.
                unsafe { wipe_and_free(resp) };
            }
        }
        // SAFETY: the array came from `calloc` and is not used after this.
        unsafe { libc::free(self.first.as_ptr().cast()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    use crate::system::pam::tests::{explode, remember, shown};

    /// Plays PAM's part: sends `messages` in Linux-PAM's layout and takes back
    /// each answer as the full `RESPONSE_SIZE` bytes, then frees what PAM owns.
    fn ask(
        conversation: &Conversation<'_>,
        messages: &[(c_int, &str)],
    ) -> Result<Vec<Option<Vec<u8>>>, c_int> {
        let texts: Vec<CString> = messages
            .iter()
            .map(|(_, text)| CString::new(*text).unwrap())
            .collect();
        let structs: Vec<pam_message> = messages
            .iter()
            .zip(&texts)
            .map(|((style, _), text)| pam_message {
                msg_style: *style,
                msg: text.as_ptr(),
            })
            .collect();
        let mut pointers: Vec<*const pam_message> = structs.iter().map(ptr::from_ref).collect();
        let mut responses: *mut pam_response = ptr::null_mut();
        let appdata = ptr::from_ref(conversation).cast_mut().cast::<c_void>();
        // SAFETY: the arguments follow PAM's contract; everything outlives the call.
        let code = unsafe {
            converse(
                c_int::try_from(pointers.len()).unwrap(),
                pointers.as_mut_ptr(),
                &mut responses,
                appdata,
            )
        };
        if code != PAM_SUCCESS {
            assert!(
                responses.is_null(),
                "no answers may be handed over on failure"
            );
            return Err(code);
        }
        assert!(!responses.is_null());
        let answers = (0..messages.len())
            .map(|i| {
                // SAFETY: on success the array holds one initialised entry per message.
                let entry = unsafe { &*responses.add(i) };
                assert_eq!(entry.resp_retcode, 0);
                (!entry.resp.is_null()).then(|| {
                    // SAFETY: a non-null answer is a RESPONSE_SIZE-byte buffer now ours.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(entry.resp.cast::<u8>(), RESPONSE_SIZE)
                    }
                    .to_vec();
                    // SAFETY: ours to free, exactly once.
                    unsafe { wipe_and_free(entry.resp) };
                    bytes
                })
            })
            .collect();
        // SAFETY: the array came from calloc and is now ours to free.
        unsafe { libc::free(responses.cast()) };
        Ok(answers)
    }

    fn padded(password: &[u8]) -> Vec<u8> {
        let mut bytes = password.to_vec();
        bytes.resize(RESPONSE_SIZE, 0);
        bytes
    }

    #[test]
    fn a_hidden_prompt_gets_the_password_zero_padded() {
        let password = [b'O', b'l', b'd', 0xff, b'#', b'1'];
        let conversation = Conversation::new(&password, remember);
        let answers = ask(&conversation, &[(PAM_PROMPT_ECHO_OFF, "Password: ")]).unwrap();
        assert_eq!(answers, vec![Some(padded(&password))]);
        assert_eq!(conversation.failure(), None);
    }

    #[test]
    fn the_longest_password_pam_accepts_still_ends_in_nul() {
        let password = vec![b'x'; PAM_MAX_RESP_SIZE];
        let conversation = Conversation::new(&password, remember);
        let answers = ask(&conversation, &[(PAM_PROMPT_ECHO_OFF, "Password: ")]).unwrap();
        assert_eq!(answers, vec![Some(padded(&password))]);
    }

    #[test]
    fn a_password_longer_than_pam_accepts_is_refused() {
        let password = vec![b'x'; PAM_MAX_RESP_SIZE + 1];
        let conversation = Conversation::new(&password, remember);
        let refused = ask(&conversation, &[(PAM_PROMPT_ECHO_OFF, "Password: ")]);
        assert_eq!(refused, Err(PAM_CONV_ERR));
        assert_eq!(
            conversation.failure(),
            Some(ConversationFailure::PasswordTooLong)
        );
    }

    #[test]
    fn a_visible_prompt_cannot_be_answered() {
        let conversation = Conversation::new(b"Old#Pass1", remember);
        let refused = ask(
            &conversation,
            &[(PAM_PROMPT_ECHO_ON, "Verification code: ")],
        );
        assert_eq!(refused, Err(PAM_CONV_ERR));
        assert_eq!(
            conversation.failure(),
            Some(ConversationFailure::UnanswerablePrompt(
                "Verification code: ".into()
            ))
        );
    }

    #[test]
    fn a_failure_after_a_password_answer_hands_nothing_over() {
        // The buffer already filled for the first message stays with credsync,
        // which wipes and frees it (run under Miri or ASan to see it freed).
        let conversation = Conversation::new(b"Old#Pass1", remember);
        let refused = ask(
            &conversation,
            &[
                (PAM_PROMPT_ECHO_OFF, "Password: "),
                (PAM_PROMPT_ECHO_ON, "login: "),
            ],
        );
        assert_eq!(refused, Err(PAM_CONV_ERR));
    }

    #[test]
    fn errors_and_notices_are_shown_one_line_each_and_need_no_answer() {
        let conversation = Conversation::new(b"Old#Pass1", remember);
        let answers = ask(
            &conversation,
            &[
                (
                    PAM_ERROR_MSG,
                    "You are required to change your password immediately\n",
                ),
                (PAM_TEXT_INFO, "two\nlines \x1b[31mred"),
                (PAM_PROMPT_ECHO_OFF, "Password: "),
            ],
        )
        .unwrap();
        assert_eq!(answers, vec![None, None, Some(padded(b"Old#Pass1"))]);
        assert_eq!(
            shown(),
            vec![
                "You are required to change your password immediately".to_owned(),
                "two\\nlines \\u{1b}[31mred".to_owned(),
            ]
        );
    }

    #[test]
    fn a_panic_inside_the_callback_becomes_a_conversation_error() {
        let conversation = Conversation::new(b"Old#Pass1", explode);
        let refused = ask(
            &conversation,
            &[
                (PAM_PROMPT_ECHO_OFF, "Password: "),
                (PAM_TEXT_INFO, "hello"),
            ],
        );
        assert_eq!(refused, Err(PAM_CONV_ERR));
        assert!(conversation.panicked());
    }

    #[test]
    fn message_styles_credsync_does_not_know_are_refused() {
        let conversation = Conversation::new(b"Old#Pass1", remember);
        // PAM_BINARY_PROMPT (Linux-PAM extension).
        assert_eq!(ask(&conversation, &[(7, "")]), Err(PAM_CONV_ERR));
        assert_eq!(
            conversation.failure(),
            Some(ConversationFailure::UnsupportedMessage(7))
        );
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused() {
        let conversation = Conversation::new(b"Old#Pass1", remember);
        assert_eq!(ask(&conversation, &[]), Err(PAM_CONV_ERR));
        let many = vec![(PAM_TEXT_INFO, "x"); PAM_MAX_NUM_MSG + 1];
        assert_eq!(ask(&conversation, &many), Err(PAM_CONV_ERR));
        assert!(shown().is_empty());
    }
}
