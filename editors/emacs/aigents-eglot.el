;;; aigents-eglot.el --- aigents-lsp with eglot -*- lexical-binding: t -*-

;; Load from your init file: (load "/path/to/aigents-eglot.el")
;; Eglot manages one server per major mode, so these modes get aigents-lsp INSTEAD of
;; their usual server; keep only the modes you want AI completion in.

(require 'eglot)

(add-to-list 'eglot-server-programs
             '((python-mode python-ts-mode
                js-mode js-ts-mode typescript-mode typescript-ts-mode
                go-mode go-ts-mode rust-mode rust-ts-mode)
               . ("aigents-lsp")))

;; Optional: start it automatically.
;; (add-hook 'python-mode-hook #'eglot-ensure)

;; Commands (docs/commands.md) take one object argument with the file and the region.
(defun aigents-eglot--arg (&rest extra)
  "The command argument for the region (or point), plus EXTRA keys."
  (let ((beg (if (use-region-p) (region-beginning) (point)))
        (end (if (use-region-p) (region-end) (point))))
    (append (list :uri (plist-get (eglot--TextDocumentIdentifier) :uri)
                  :range (list :start (eglot--pos-to-lsp-position beg)
                               :end (eglot--pos-to-lsp-position end)))
            extra)))

(defun aigents-eglot-run (command &rest extra)
  "Run aigents COMMAND (a string) on the region; the server shows the answer."
  (eglot-execute-command (eglot--current-server-or-lose) (intern command)
                         (vector (apply #'aigents-eglot--arg extra))))

(defun aigents-explain () "Explain the region." (interactive) (aigents-eglot-run "aigents.explain"))
(defun aigents-fix () "Fix the region." (interactive) (aigents-eglot-run "aigents.fix"))
(defun aigents-docstring () "Add a docstring." (interactive) (aigents-eglot-run "aigents.docstring"))
(defun aigents-tests () "Write tests." (interactive) (aigents-eglot-run "aigents.tests"))
(defun aigents-edit (instruction)
  "Rewrite the region following INSTRUCTION."
  (interactive "sInstruction: ")
  (aigents-eglot-run "aigents.edit" :instruction instruction))
(defun aigents-chat (question)
  "Ask QUESTION about the region."
  (interactive "sAsk: ")
  (aigents-eglot-run "aigents.chat" :question question))

(provide 'aigents-eglot)
;;; aigents-eglot.el ends here
