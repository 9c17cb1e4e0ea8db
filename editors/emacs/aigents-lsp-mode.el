;;; aigents-lsp-mode.el --- aigents-lsp with lsp-mode -*- lexical-binding: t -*-

;; Load from your init file: (load "/path/to/aigents-lsp-mode.el")
;; lsp-mode runs add-on servers next to the main one, so your usual server keeps working.

(require 'lsp-mode)

(lsp-register-client
 (make-lsp-client
  :new-connection (lsp-stdio-connection '("aigents-lsp"))
  :activation-fn (lsp-activate-on "python" "javascript" "typescript" "go" "rust" "c" "cpp")
  :add-on? t
  :priority -2
  :server-id 'aigents))

;; Ghost text (lsp-mode 9.0.1+, `lsp-inline-completion'): suggestions appear after
;; `lsp-inline-completion-idle-delay' seconds; C-<return> accepts, C-n / C-p cycle, C-g cancels.
(when (require 'lsp-inline-completion nil t)
  (setq lsp-inline-completion-idle-delay 0.5)
  (add-hook 'lsp-mode-hook #'lsp-inline-completion-mode))

;; Commands: M-x lsp-execute-code-action for the AI code actions, or call them directly:
(defun aigents-lsp-run (command &rest extra)
  "Run aigents COMMAND (a string) on the region; the server shows the answer."
  (let ((range (if (use-region-p)
                   (lsp--region-to-range (region-beginning) (region-end))
                 (lsp--region-to-range (point) (point)))))
    (lsp-send-execute-command
     command
     (vector (append (list :uri (lsp--buffer-uri) :range range) extra)))))

(defun aigents-explain () "Explain the region." (interactive) (aigents-lsp-run "aigents.explain"))
(defun aigents-edit (instruction)
  "Rewrite the region following INSTRUCTION."
  (interactive "sInstruction: ")
  (aigents-lsp-run "aigents.edit" :instruction instruction))
(defun aigents-chat (question)
  "Ask QUESTION about the region."
  (interactive "sAsk: ")
  (aigents-lsp-run "aigents.chat" :question question))

(provide 'aigents-lsp-mode)
;;; aigents-lsp-mode.el ends here
