;;; eglot_harness.el --- drive eglot + aigents-lsp in `emacs --batch' -*- lexical-binding: t -*-

;; Used by tests/editors/test_emacs.py:
;;   emacs --batch -Q -l eglot_harness.el FILE.py
;; Environment:
;;   EGLOT_TEST_SERVER  the server command as a JSON array (default ["aigents-lsp"])
;;   EGLOT_TEST_OUT     where to write the JSON results
;;   EGLOT_TEST_TIMEOUT seconds for each wait (default 20)
;; The server is registered exactly as editors/emacs/aigents-eglot.el does, started with
;; eglot's own contact guessing, then asked for a completion at the end of the file (raw
;; request and `completion-at-point'), and for the `aigents.stats' command.

(require 'package)
;; -Q skips site-start, so point package.el at Debian's elpa-* packages (elpa-eglot) itself.
(add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
(package-initialize)
(require 'eglot)
(require 'json)

(defvar harness-results nil "Alist written to EGLOT_TEST_OUT as JSON.")
(defvar harness-timeout (string-to-number (or (getenv "EGLOT_TEST_TIMEOUT") "20")))

(defun harness-record (key value)
  (push (cons key value) harness-results))

(defun harness-write ()
  (let ((out (getenv "EGLOT_TEST_OUT"))
        (json-encoding-pretty-print t))
    (when out
      (with-temp-file out (insert (json-encode (reverse harness-results)))))))

(defmacro harness-wait (what &rest condition)
  "Poll CONDITION (pumping process output) until non-nil, or fail naming WHAT."
  `(with-timeout (harness-timeout (error "Timed out after %ss waiting for %s" harness-timeout ,what))
     (let (value)
       (while (not (setq value (progn ,@condition)))
         (accept-process-output nil 0.1))
       value)))

(defun harness-run ()
  (let* ((server-cmd (append (json-read-from-string
                              (or (getenv "EGLOT_TEST_SERVER") "[\"aigents-lsp\"]"))
                             nil))
         (file (car command-line-args-left))
         (started (float-time)))
    (setq command-line-args-left nil)
    ;; The README's configuration, with the command swapped for the test's interpreter.
    (add-to-list 'eglot-server-programs
                 `((python-mode python-ts-mode) . ,server-cmd))
    (setq eglot-sync-connect nil
          eglot-autoshutdown t)
    (find-file file)
    (harness-record "major_mode" (symbol-name major-mode))
    (apply #'eglot (eglot--guess-contact))
    (let ((server (harness-wait "the eglot connection"
                                (and (eglot-managed-p) (eglot-current-server)))))
      (harness-record "connected" t)
      (harness-record "server_name" (plist-get (eglot--server-info server) :name))
      (harness-record "connect_seconds" (- (float-time) started))
      (harness-record "completion_provider"
                      (and (eglot--server-capable :completionProvider) t))
      ;; 1. The raw request, as eglot sends it.
      (goto-char (point-max))
      (let* ((t0 (float-time))
             (resp (jsonrpc-request server :textDocument/completion
                                    (eglot--CompletionParams)
                                    :timeout harness-timeout))
             (items (append (if (vectorp resp) resp (plist-get resp :items)) nil)))
        (harness-record "completion_seconds" (- (float-time) t0))
        (harness-record "labels" (vconcat (mapcar (lambda (i) (plist-get i :label)) items)))
        (harness-record "insert_texts"
                        (vconcat (mapcar (lambda (i)
                                           (or (plist-get (plist-get i :textEdit) :newText)
                                               (plist-get i :insertText)
                                               (plist-get i :label)))
                                         items))))
      ;; 2. What a user gets: `completion-at-point' inserts the sole candidate.
      (goto-char (point-max))
      (let ((completion-at-point-functions '(eglot-completion-at-point)))
        (completion-at-point))
      (harness-record "buffer_after_capf" (buffer-substring-no-properties (point-min) (point-max)))
      ;; 3. A command through eglot's own entry point.
      (let ((stats (eglot-execute-command server 'aigents.stats [])))
        (harness-record "stats_keys"
                        (vconcat (cl-loop for (k _v) on stats by #'cddr
                                          collect (substring (symbol-name k) 1)))))
      (set-buffer-modified-p nil)
      (eglot-shutdown server))))

(condition-case err
    (harness-run)
  (error (harness-record "error" (error-message-string err))))
(harness-write)
(kill-emacs 0)

;;; eglot_harness.el ends here
